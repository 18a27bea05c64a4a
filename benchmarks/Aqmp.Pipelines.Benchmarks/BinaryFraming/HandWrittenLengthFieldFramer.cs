using System.Buffers;
using Aqmp.Pipelines.Framing;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// What a user would write for 4-byte big-endian length-prefixed frames as an
/// <see cref="IMessageFramer{TMessage}"/> with a <see cref="SequenceReader{T}"/>: no limit, no
/// header checks. Driven by the same loop as the library's framer, it separates the cost of the
/// framer's own code from the cost of the framer contract (positions, a slice per frame).
/// </summary>
internal sealed class HandWrittenLengthFieldFramer : IMessageFramer<ReadOnlySequence<byte>>
{
    /// <inheritdoc />
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
    {
        var reader = new SequenceReader<byte>(input);
        if (reader.TryReadBigEndian(out int length) && reader.Remaining >= length)
        {
            message = reader.UnreadSequence.Slice(0, length);
            reader.Advance(length);
            consumed = examined = reader.Position;
            return true;
        }

        examined = input.End;
        message = default;
        return false;
    }

    /// <inheritdoc />
    public void WriteMessage(ReadOnlySequence<byte> message, IBufferWriter<byte> output) => throw new NotSupportedException();
}
