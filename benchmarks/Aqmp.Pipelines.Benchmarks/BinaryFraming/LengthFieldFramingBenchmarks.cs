using System.Buffers;
using System.Buffers.Binary;
using Aqmp.Pipelines.Framing;
using BenchmarkDotNet.Attributes;
using DotNetty.Buffers;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// Frames of a 4-byte big-endian length then the payload (header stripped). Rows:
/// <list type="bullet">
/// <item><c>HandWrittenFramer</c> (baseline): <see cref="HandWrittenLengthFieldFramer"/>, a careful framer for exactly this format, driven as the session drives a framer;</item>
/// <item><c>LengthFieldFramer</c>: the library's framer, driven the same way;</item>
/// <item><c>SequenceReaderFramer</c>: <see cref="SequenceReaderLengthFieldFramer"/>, the shortest framer a user writes, driven the same way (for scale);</item>
/// <item><c>RawSequenceReaderLoop</c>: one <see cref="SequenceReader{T}"/> over the whole buffer, no framer contract (for scale);</item>
/// <item><c>DotNettyLengthFieldBasedFrameDecoder</c>: DotNetty 0.7.6's decoder over the same bytes (reference; see <see cref="DotNettyReference"/>).</item>
/// </list>
/// </summary>
public class LengthFieldFramingBenchmarks : BinaryFramingBenchmarks
{
    private readonly LengthFieldFramer _framer = new(lengthFieldLength: 4, maximumFrameLength: MaximumPayloadLength + 4);
    private readonly HandWrittenLengthFieldFramer _handWritten = new(MaximumPayloadLength);
    private readonly SequenceReaderLengthFieldFramer _sequenceReader = new();
    private readonly Func<IByteBuffer, object?> _dotNetty = new DotNettyReference.LengthFieldDecoder(MaximumPayloadLength + 4, 4).DecodeOne;

    /// <summary>The baseline: a careful hand-written framer for this format.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark(Baseline = true)]
    public long HandWrittenFramer() => ReadWith(_handWritten);

    /// <summary>The library's framer.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long LengthFieldFramer() => ReadWith(_framer);

    /// <summary>The shortest hand-written framer, over a <see cref="SequenceReader{T}"/>.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long SequenceReaderFramer() => ReadWith(_sequenceReader);

    /// <summary>A raw loop owning the whole buffer, with no framer contract.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long RawSequenceReaderLoop()
    {
        var reader = new SequenceReader<byte>(Buffer);
        long bytes = 0;
        var frames = 0;
        while (reader.TryReadBigEndian(out int length) && reader.Remaining >= length)
        {
            var payload = reader.UnreadSequence.Slice(0, length);
            reader.Advance(length);
            bytes += payload.Length;
            frames++;
        }

        return Verify(frames, bytes);
    }

    /// <summary>DotNetty's <c>LengthFieldBasedFrameDecoder</c>.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long DotNettyLengthFieldBasedFrameDecoder() => DecodeWith(_dotNetty);

    /// <inheritdoc />
    protected override byte[] Frame(byte[] payload)
    {
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame, 4);
        return frame;
    }
}
