using System.Buffers;
using Aqmp.Pipelines.Framing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// CRLF-delimited frames: <see cref="DelimiterFramer"/> (one delimiter, and CRLF or LF) against a
/// hand-written <see cref="SequenceReader{T}.TryReadTo(out ReadOnlySequence{T}, ReadOnlySpan{T}, bool)"/> loop.
/// </summary>
public class DelimiterFramingBenchmarks : BinaryFramingBenchmarks
{
    private readonly DelimiterFramer _crLf = new("\r\n"u8, maximumPayloadLength: 64 * 1024);
    private readonly DelimiterFramer _crLfOrLf = new(["\r\n"u8.ToArray(), "\n"u8.ToArray()], maximumPayloadLength: 64 * 1024);

    /// <summary>The hand-written baseline.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark(Baseline = true)]
    public long SequenceReaderTryReadTo()
    {
        var reader = new SequenceReader<byte>(Buffer);
        long bytes = 0;
        var frames = 0;
        while (reader.TryReadTo(out ReadOnlySequence<byte> payload, "\r\n"u8))
        {
            bytes += payload.Length;
            frames++;
        }

        return Verify(frames, bytes);
    }

    /// <summary>The library's framer with one delimiter.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long DelimiterFramerTryReadMessage() => ReadWith(_crLf);

    /// <summary>The library's framer with two alternative delimiters.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long DelimiterFramerTwoDelimiters() => ReadWith(_crLfOrLf);

    /// <inheritdoc />
    protected override byte[] Frame(byte[] payload) => [.. payload, (byte)'\r', (byte)'\n'];
}
