using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Aqmp.Pipelines.Framing;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// A hand-written <see cref="IMessageFramer{TMessage}"/> for exactly one format, a 4-byte
/// big-endian length then the payload, as fast as we know how to write one, with only the checks a
/// network framer cannot skip (a negative length, the limit): the header is read straight from the
/// first span and a frame within it is cut with positions made from that segment (no seeking); a
/// frame past it takes a <see cref="SequenceReader{T}"/> path out of line. The baseline that
/// <see cref="LengthFieldFramer"/>, with all its options, is held to.
/// </summary>
internal sealed class HandWrittenLengthFieldFramer(int maximumPayloadLength) : IMessageFramer<ReadOnlySequence<byte>>
{
    /// <inheritdoc />
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
    {
        var first = input.FirstSpan;
        if (first.Length >= 4)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(first);
            if ((uint)length > (uint)maximumPayloadLength)
            {
                throw new FrameTooLargeException(maximumPayloadLength, length);
            }

            if (first.Length - 4 >= length)
            {
                var start = input.Start;
                var segment = start.GetObject();
                var index = start.GetInteger();
                var end = new SequencePosition(segment, index + 4 + length);
                consumed = examined = end;
                message = input.Slice(new SequencePosition(segment, index + 4), end);
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
        if (reader.TryReadBigEndian(out int length))
        {
            if ((uint)length > (uint)maximumPayloadLength)
            {
                throw new FrameTooLargeException(maximumPayloadLength, length);
            }

            if (reader.Remaining >= length)
            {
                message = reader.UnreadSequence.Slice(0, length);
                consumed = examined = message.End;
                return true;
            }
        }

        examined = input.End;
        message = default;
        return false;
    }
}
