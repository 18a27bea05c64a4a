using System.Buffers;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>
/// <see cref="QmpFramer"/> as it is, plus a count of the messages whose line straddled two or more
/// pipe segments (the JSON reader's multi-segment path), to show the fuzzing reaches it.
/// </summary>
internal sealed class CountingQmpFramer : IMessageFramer<QmpMessage>
{
    private readonly QmpFramer _inner = new();

    /// <summary>How many messages were read from a line spanning more than one segment.</summary>
    public int MultiSegmentMessages { get; private set; }

    /// <inheritdoc />
    public long? MaximumFrameLength => _inner.MaximumFrameLength;

    /// <inheritdoc />
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out QmpMessage message)
    {
        if (!_inner.TryReadMessage(input, ref consumed, ref examined, out message))
        {
            return false;
        }

        if (!input.Slice(input.Start, consumed).IsSingleSegment)
        {
            MultiSegmentMessages++;
        }

        return true;
    }

    /// <inheritdoc />
    public bool TryReadFinalMessage(in ReadOnlySequence<byte> remainder, out QmpMessage message) => _inner.TryReadFinalMessage(remainder, out message);

    /// <inheritdoc />
    public void WriteMessage(QmpMessage message, IBufferWriter<byte> output) => _inner.WriteMessage(message, output);
}
