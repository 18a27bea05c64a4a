using System.Buffers;
using Aqmp.Pipelines.Framing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// Protobuf-delimited frames (a varint length then the payload): <see cref="VarintLengthFramer"/>
/// against a hand-written <see cref="SequenceReader{T}"/> loop.
/// </summary>
public class VarintFramingBenchmarks : BinaryFramingBenchmarks
{
    private readonly VarintLengthFramer _framer = new(maximumPayloadLength: 64 * 1024);

    /// <summary>The hand-written baseline: no limit, no check for malformed varints.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark(Baseline = true)]
    public long SequenceReaderLoop()
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

    /// <summary>The library's framer.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long VarintLengthFramerTryReadMessage() => ReadWith(_framer);

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
