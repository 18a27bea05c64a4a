using System.Buffers;
using System.Runtime.CompilerServices;
using Aqmp.Pipelines.Framing;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// A hand-written <see cref="IMessageFramer{TMessage}"/> for exactly one format, a protobuf varint
/// length (at most 5 bytes, 32 bits, malformed ones not diagnosed) then the payload, as fast as we
/// know how to write one, with only the limit a network framer cannot skip: the varint is read
/// straight from the first span and a frame within it is cut with positions made from that segment;
/// a frame past it takes a <see cref="SequenceReader{T}"/> path out of line. The baseline that
/// <see cref="VarintLengthFramer"/> (10-byte, 64-bit varints, malformed ones diagnosed) is held to.
/// </summary>
internal sealed class HandWrittenVarintFramer(int maximumPayloadLength) : IMessageFramer<ReadOnlySequence<byte>>
{
    /// <inheritdoc />
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
    {
        var first = input.FirstSpan;
        uint length = 0;
        for (var i = 0; i < first.Length && i < 5; i++)
        {
            var b = first[i];
            length |= (uint)(b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                if (length > (uint)maximumPayloadLength)
                {
                    throw new FrameTooLargeException(maximumPayloadLength, length);
                }

                if (first.Length - (i + 1) < length)
                {
                    break;
                }

                var start = input.Start;
                var segment = start.GetObject();
                var index = start.GetInteger();
                var end = new SequencePosition(segment, index + i + 1 + (int)length);
                consumed = examined = end;
                message = input.Slice(new SequencePosition(segment, index + i + 1), end);
                return true;
            }
        }

        return TryReadStraddling(input, ref consumed, ref examined, out message);
    }

    /// <inheritdoc />
    public void WriteMessage(ReadOnlySequence<byte> message, IBufferWriter<byte> output) => throw new NotSupportedException();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryReadStraddling(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
    {
        var reader = new SequenceReader<byte>(input);
        uint length = 0;
        for (var shift = 0; shift < 35 && reader.TryRead(out var b); shift += 7)
        {
            length |= (uint)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                if (length > (uint)maximumPayloadLength)
                {
                    throw new FrameTooLargeException(maximumPayloadLength, length);
                }

                if (reader.Remaining >= length)
                {
                    message = reader.UnreadSequence.Slice(0, length);
                    consumed = examined = message.End;
                    return true;
                }

                break;
            }
        }

        examined = input.End;
        message = default;
        return false;
    }
}
