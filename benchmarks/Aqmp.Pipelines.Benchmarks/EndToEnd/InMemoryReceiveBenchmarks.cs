using System.Buffers;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>
/// The receive path with no socket under it: one operation writes <see cref="StreamBytes"/> (32 MiB)
/// of LF-terminated lines into an in-memory <see cref="Pipe"/>, 64 KiB per write, and the reader
/// under test takes them apart. What a session costs per message on its own — the message reader,
/// <c>LineFramer</c>, the delivery loop and <c>OnMessageAsync</c> — against a hand-written
/// <c>PipeReader</c> loop with <c>SequenceReader.TryReadTo</c> on the same pipe, so that the
/// socket benchmarks' receive rows can be read against the most the parse itself allows.
/// </summary>
/// <remarks>
/// Each line's length is checked and the operation checks the line count and total, so a wrong run
/// throws.
/// </remarks>
public class InMemoryReceiveBenchmarks : InMemoryPipeBenchmarks
{
    private byte[] _wire = [];
    private Pipe? _inbound;
    private LineCounterSession? _session;

    /// <summary>Builds the stream and, for the session, opens it over a fresh pipe.</summary>
    [GlobalSetup]
    public async Task Setup()
    {
        _wire = LineStream.BuildWire(Lines, LineLength);
        _inbound = new Pipe(MemoryPipe);
        var outbound = new Pipe(MemoryPipe); // never written: the session only receives
        Session = _session = new LineCounterSession(LineLength - 1);
        await _session.OpenAsync(new DuplexPipe(_inbound.Reader, outbound.Writer));
    }

    /// <summary>Baseline: a hand-written <c>PipeReader</c> loop, <c>SequenceReader.TryReadTo</c> per line.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark(Baseline = true)]
    public async Task<long> MemoryPipe_HandWrittenReceive()
    {
        var pipe = new Pipe(MemoryPipe);
        var write = Task.Run(() => WriteAllAsync(pipe.Writer, complete: true));
        long lines = 0;
        long bytes = 0;
        var reader = pipe.Reader;
        while (true)
        {
            var result = await reader.ReadAsync();
            var sequence = new SequenceReader<byte>(result.Buffer);
            while (sequence.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
            {
                if (line.Length != LineLength - 1)
                {
                    throw new InvalidDataException($"Line {lines + 1} has {line.Length} bytes, expected {LineLength - 1}.");
                }

                lines++;
                bytes += line.Length;
            }

            reader.AdvanceTo(sequence.Position, result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        await reader.CompleteAsync();
        await write;
        return Verify(lines, bytes);
    }

    /// <summary>The same bytes into a running session, counted in <c>OnMessageAsync</c>.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> MemoryPipe_SessionReceive()
    {
        var session = _session!;
        var done = session.Expect(Lines);
        var write = Task.Run(() => WriteAllAsync(_inbound!.Writer, complete: false));
        await done.WaitAsync(Loopback.OperationTimeout);
        await write;
        return Verify(session.Count, session.Bytes);
    }

    private async Task WriteAllAsync(PipeWriter writer, bool complete)
    {
        for (var offset = 0; offset < _wire.Length; offset += ChunkBytes)
        {
            await writer.WriteAsync(_wire.AsMemory(offset, Math.Min(ChunkBytes, _wire.Length - offset)));
        }

        if (complete)
        {
            await writer.CompleteAsync();
        }
    }

    private long Verify(long lines, long payloadBytes)
    {
        if (lines != Lines || payloadBytes != (long)Lines * (LineLength - 1))
        {
            throw new InvalidOperationException($"Received {lines} lines / {payloadBytes} payload bytes, expected {Lines} / {(long)Lines * (LineLength - 1)}.");
        }

        return (long)Lines * LineLength;
    }
}
