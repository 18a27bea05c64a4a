using System.Buffers;
using System.Buffers.Binary;
using Aqmp.Pipelines.Framing;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>The README's custom framer: a 4-byte big-endian length prefix, then the payload.</summary>
internal sealed class LengthPrefixedFramer(int maximumPayload = 1 << 20) : IMessageFramer<ReadOnlySequence<byte>>
{
    public long? MaximumFrameLength => maximumPayload + 4L;

    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
    {
        message = default;
        var reader = new SequenceReader<byte>(input);
        if (reader.TryReadBigEndian(out int length))
        {
            if (length < 0)
            {
                throw new ProtocolException($"Negative frame length {length}.");
            }

            if (length > maximumPayload)
            {
                throw new FrameTooLargeException(maximumPayload, length);
            }
        }

        if (input.Length < 4 || input.Length - 4 < length)
        {
            examined = input.End;
            return false;
        }

        message = input.Slice(4, length);
        consumed = examined = message.End;
        return true;
    }

    public void WriteMessage(ReadOnlySequence<byte> message, IBufferWriter<byte> output)
    {
        BinaryPrimitives.WriteInt32BigEndian(output.GetSpan(4), checked((int)message.Length));
        output.Advance(4);
        foreach (var segment in message)
        {
            output.Write(segment.Span);
        }
    }
}
