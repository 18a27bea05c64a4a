using System.Buffers;
using Aqmp.Pipelines.Framing;
using BenchmarkDotNet.Attributes;
using DotNetty.Buffers;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// CRLF-delimited frames (delimiter stripped). Rows:
/// <list type="bullet">
/// <item><c>HandWrittenFramer</c> (baseline): <see cref="HandWrittenDelimiterFramer"/>, a careful framer for exactly this format, driven as the session drives a framer;</item>
/// <item><c>DelimiterFramer</c>: the library's framer with one delimiter, driven the same way;</item>
/// <item><c>DelimiterFramerTwoDelimiters</c>: the library's framer with CRLF or LF, driven the same way;</item>
/// <item><c>RawSequenceReaderLoop</c>: one <see cref="SequenceReader{T}"/> over the whole buffer calling <c>TryReadTo</c>, no framer contract (for scale);</item>
/// <item><c>DotNettyDelimiterBasedFrameDecoder</c>: DotNetty 0.7.6's decoder with the CRLF delimiter over the same bytes (reference; see <see cref="DotNettyReference"/>).</item>
/// </list>
/// </summary>
public class DelimiterFramingBenchmarks : BinaryFramingBenchmarks
{
    private readonly DelimiterFramer _crLf = new("\r\n"u8, maximumPayloadLength: MaximumPayloadLength);
    private readonly DelimiterFramer _crLfOrLf = new(["\r\n"u8.ToArray(), "\n"u8.ToArray()], maximumPayloadLength: MaximumPayloadLength);
    private readonly HandWrittenDelimiterFramer _handWritten = new(MaximumPayloadLength);
    private readonly Func<IByteBuffer, object?> _dotNetty = new DotNettyReference.DelimiterDecoder(MaximumPayloadLength, "\r\n"u8.ToArray()).DecodeOne;

    /// <summary>The baseline: a careful hand-written framer for this format.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark(Baseline = true)]
    public long HandWrittenFramer() => ReadWith(_handWritten);

    /// <summary>The library's framer with one delimiter.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long DelimiterFramer() => ReadWith(_crLf);

    /// <summary>The library's framer with two alternative delimiters.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long DelimiterFramerTwoDelimiters() => ReadWith(_crLfOrLf);

    /// <summary>A raw loop owning the whole buffer, with no framer contract.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long RawSequenceReaderLoop()
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

    /// <summary>DotNetty's <c>DelimiterBasedFrameDecoder</c>.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long DotNettyDelimiterBasedFrameDecoder() => DecodeWith(_dotNetty);

    /// <inheritdoc />
    protected override byte[] Frame(byte[] payload) => [.. payload, (byte)'\r', (byte)'\n'];
}
