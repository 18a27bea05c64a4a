using System.Buffers;
using System.Runtime.CompilerServices;
using Aqmp.Pipelines.Framing;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// A hand-written <see cref="IMessageFramer{TMessage}"/> for exactly one format, frames ending with
/// CRLF (stripped), as fast as we know how to write one, with only the limit a network framer
/// cannot skip: the first span is searched with a vectorized
/// <see cref="MemoryExtensions.IndexOf{T}(ReadOnlySpan{T}, ReadOnlySpan{T})"/> and a frame within it
/// is cut with positions made from that segment; a frame past it takes a
/// <see cref="SequenceReader{T}.TryReadTo(out ReadOnlySequence{T}, ReadOnlySpan{T}, bool)"/> path
/// out of line (which searches the frame from its start on every call). The baseline that
/// <see cref="DelimiterFramer"/>, with all its options, is held to.
/// </summary>
internal sealed class HandWrittenDelimiterFramer(int maximumPayloadLength) : IMessageFramer<ReadOnlySequence<byte>>
{
    /// <inheritdoc />
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
    {
        var index = input.FirstSpan.IndexOf("\r\n"u8);
        if (index >= 0)
        {
            if (index > maximumPayloadLength)
            {
                throw new FrameTooLargeException(maximumPayloadLength, index);
            }

            var start = input.Start;
            var segment = start.GetObject();
            var startIndex = start.GetInteger();
            consumed = examined = new SequencePosition(segment, startIndex + index + 2);
            message = input.Slice(start, new SequencePosition(segment, startIndex + index));
            return true;
        }

        return TryReadStraddling(input, ref consumed, ref examined, out message);
    }

    /// <inheritdoc />
    public void WriteMessage(ReadOnlySequence<byte> message, IBufferWriter<byte> output) => throw new NotSupportedException();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryReadStraddling(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
    {
        var reader = new SequenceReader<byte>(input);
        if (reader.TryReadTo(out message, "\r\n"u8))
        {
            if (message.Length > maximumPayloadLength)
            {
                throw new FrameTooLargeException(maximumPayloadLength, message.Length);
            }

            consumed = examined = reader.Position;
            return true;
        }

        if (input.Length > maximumPayloadLength + 1L)
        {
            throw new FrameTooLargeException(maximumPayloadLength, input.Length);
        }

        examined = input.End;
        return false;
    }
}
