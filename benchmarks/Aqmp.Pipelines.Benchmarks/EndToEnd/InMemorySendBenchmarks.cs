using System.Buffers;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>
/// The send path with no socket under it: one operation sends <see cref="StreamBytes"/> (32 MiB)
/// of LF-terminated lines into an in-memory <see cref="Pipe"/> whose other end a counting task
/// drains. What a session costs per message on its own — <c>SendAsync</c>, the writer's lock,
/// framing, batching and flushing — against the same bytes written by hand in 64 KiB chunks, so
/// the socket benchmarks' send rows can be read against the most a per-message send reaches here.
/// </summary>
/// <remarks>
/// Both pipes have a 1 MiB pause threshold and 64 KiB segments, like a session's send pipe. The drain checks every
/// line's length and the operation checks the line count and total, so a wrong run throws.
/// </remarks>
public class InMemorySendBenchmarks : InMemoryPipeBenchmarks
{
    private byte[] _wire = [];
    private ReadOnlySequence<byte>[] _payloads = [];
    private Pipe? _pipe;
    private LineSenderSession? _session;

    /// <summary>Builds the stream and, for the session, opens it over a fresh pipe.</summary>
    [GlobalSetup]
    public async Task Setup()
    {
        _wire = LineStream.BuildWire(Lines, LineLength);
        _payloads = LineStream.Payloads(_wire, LineLength);

        _pipe = new Pipe(MemoryPipe);
        var inbound = new Pipe(MemoryPipe); // never written: the session only sends
        Session = _session = new LineSenderSession();
        await _session.OpenAsync(new DuplexPipe(inbound.Reader, _pipe.Writer));
    }

    /// <summary>Baseline: the pre-built stream written into the pipe by hand, 64 KiB per write and flush.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark(Baseline = true)]
    public async Task<long> HandWrittenChunks_MemoryPipe()
    {
        var pipe = new Pipe(MemoryPipe);
        var drain = DrainAsync(pipe.Reader);
        for (var offset = 0; offset < _wire.Length; offset += ChunkBytes)
        {
            await pipe.Writer.WriteAsync(_wire.AsMemory(offset, Math.Min(ChunkBytes, _wire.Length - offset)));
        }

        await pipe.Writer.CompleteAsync();
        return Verify(await drain);
    }

    /// <summary><c>SendAsync</c> per line through a running session into the pipe.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> SessionSend_MemoryPipe()
    {
        var drain = DrainAsync(_pipe!.Reader, Lines);
        await _session!.SendAllAsync(_payloads);
        return Verify(await drain.WaitAsync(Loopback.OperationTimeout));
    }

    /// <summary><c>SendManyAsync</c> in bursts of 64 lines (one lock and one wake per burst) through a running session into the pipe.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> SessionSendMany64_MemoryPipe()
    {
        var drain = DrainAsync(_pipe!.Reader, Lines);
        await _session!.SendInBurstsAsync(_payloads, 64);
        return Verify(await drain.WaitAsync(Loopback.OperationTimeout));
    }

    /// <summary>Reads until the writer completes or <paramref name="lines"/> lines have arrived, checking each line's length.</summary>
    private async Task<(long Lines, long Bytes)> DrainAsync(PipeReader reader, long lines = long.MaxValue)
    {
        long count = 0;
        long bytes = 0;
        var partial = 0;
        while (count < lines)
        {
            var result = await reader.ReadAsync();
            foreach (var memory in result.Buffer)
            {
                var span = memory.Span;
                bytes += span.Length;
                int index;
                while ((index = span.IndexOf((byte)'\n')) >= 0)
                {
                    if (partial + index + 1 != LineLength)
                    {
                        throw new InvalidDataException($"Line {count + 1} has {partial + index} bytes, expected {LineLength - 1}.");
                    }

                    count++;
                    partial = 0;
                    span = span[(index + 1)..];
                }

                partial += span.Length;
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        if (lines == long.MaxValue)
        {
            await reader.CompleteAsync();
        }

        return (count, bytes);
    }

    private long Verify((long Lines, long Bytes) received)
    {
        if (received.Lines != Lines || received.Bytes != (long)Lines * LineLength)
        {
            throw new InvalidOperationException($"Received {received.Lines} lines / {received.Bytes} bytes, expected {Lines} / {(long)Lines * LineLength}.");
        }

        return received.Bytes;
    }
}
