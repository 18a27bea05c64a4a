using System.Buffers;
using Aqmp.Pipelines.Framing;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// The shortest <see cref="IMessageFramer{TMessage}"/> a user writes for 4-byte big-endian
/// length-prefixed frames, in the style of the README's "Writing a framer": a
/// <see cref="SequenceReader{T}"/> over the whole input on every call, no limit, no header checks.
/// For scale: the baseline the framers are held to is <see cref="HandWrittenLengthFieldFramer"/>.
/// </summary>
internal sealed class SequenceReaderLengthFieldFramer : IMessageFramer<ReadOnlySequence<byte>>
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
