using System.Buffers;
using Aqmp.Pipelines.Framing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// Protobuf-delimited frames (a varint length then the payload). Rows:
/// <list type="bullet">
/// <item><c>HandWrittenFramer</c> (baseline): <see cref="HandWrittenVarintFramer"/>, a careful framer for exactly this format, driven as the session drives a framer;</item>
/// <item><c>VarintLengthFramer</c>: the library's framer, driven the same way;</item>
/// <item><c>RawSequenceReaderLoop</c>: one <see cref="SequenceReader{T}"/> over the whole buffer, no limit, no framer contract (for scale).</item>
/// </list>
/// DotNetty's varint decoder (<c>ProtobufVarint32FrameDecoder</c>) is in DotNetty.Codecs.Protobuf, which
/// the package source here does not serve: no reference row.
/// </summary>
public class VarintFramingBenchmarks : BinaryFramingBenchmarks
{
    private readonly VarintLengthFramer _framer = new(maximumPayloadLength: MaximumPayloadLength);
    private readonly HandWrittenVarintFramer _handWritten = new(MaximumPayloadLength);

    /// <summary>The baseline: a careful hand-written framer for this format.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark(Baseline = true)]
    public long HandWrittenFramer() => ReadWith(_handWritten);

    /// <summary>The library's framer.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long VarintLengthFramer() => ReadWith(_framer);

    /// <summary>A raw loop owning the whole buffer, with no framer contract.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long RawSequenceReaderLoop()
    {
        var reader = new SequenceReader<byte>(Buffer);
        long bytes = 0;
        var frames = 0;
        while (TryReadVarint(ref reader, out var length) && reader.Remaining >= length)
        {
            var payload = reader.UnreadSequence.Slice(0, length);
            reader.Advance(length);
            bytes += payload.Length;
            frames++;
        }

        return Verify(frames, bytes);
    }

    /// <inheritdoc />
    protected override byte[] Frame(byte[] payload)
    {
        var output = new ArrayBufferWriter<byte>();
        _framer.WriteMessage(new ReadOnlySequence<byte>(payload), output);
        return output.WrittenSpan.ToArray();
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out long value)
    {
        value = 0;
        for (var shift = 0; reader.TryRead(out var b); shift += 7)
        {
            value |= (long)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }
}
