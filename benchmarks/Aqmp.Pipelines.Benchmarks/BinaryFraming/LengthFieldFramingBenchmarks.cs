using System.Buffers;
using System.Buffers.Binary;
using Aqmp.Pipelines.Framing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// Frames of a 4-byte big-endian length then the payload: <see cref="LengthFieldFramer"/> against
/// a hand-written <see cref="SequenceReader{T}"/> loop, and a hand-written framer driven the same way.
/// </summary>
public class LengthFieldFramingBenchmarks : BinaryFramingBenchmarks
{
    private readonly LengthFieldFramer _framer = new(lengthFieldLength: 4, maximumFrameLength: 64 * 1024);
    private readonly HandWrittenLengthFieldFramer _handWritten = new();

    /// <summary>The hand-written baseline.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark(Baseline = true)]
    public long SequenceReaderLoop()
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

    /// <summary>A hand-written framer for the same format, driven as the library's is.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long HandWrittenFramerTryReadMessage() => ReadWith(_handWritten);

    /// <summary>The library's framer.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long LengthFieldFramerTryReadMessage() => ReadWith(_framer);

    /// <inheritdoc />
    protected override byte[] Frame(byte[] payload)
    {
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame, 4);
        return frame;
    }
}
