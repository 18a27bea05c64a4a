using System.Buffers;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>
/// A byte-line session (<see cref="LineFramer"/>, no copies) that checks every inbound line, in
/// order, against a regenerated <see cref="LineFrameStream"/>, and sends raw lines. A line that
/// differs, or one more than expected, ends the session with an <see cref="InvalidDataException"/>
/// saying where (the error <see cref="PipeProtocol{TMessage}.DisconnectAsync"/> then raises).
/// </summary>
internal sealed class CheckedLineProtocol(LineFramer framer, PipeProtocolOptions options, LineFrameStream? expected = null)
    : PipeProtocol<ReadOnlySequence<byte>>(framer, options)
{
    /// <summary>How many lines arrived and matched.</summary>
    public int Received { get; private set; }

    /// <summary>How many content bytes those lines held.</summary>
    public long ReceivedBytes { get; private set; }

    /// <summary>How many of those lines straddled two or more pipe segments.</summary>
    public int MultiSegmentLines { get; private set; }

    /// <summary>Queues a line (its bytes must stay unchanged until written: pass a fresh array).</summary>
    /// <param name="line">The line content, without terminator.</param>
    /// <param name="cancellationToken">Stops waiting for queue space.</param>
    /// <returns>A task that completes when the line is queued.</returns>
    public ValueTask SendLineAsync(ReadOnlySequence<byte> line, CancellationToken cancellationToken) => SendAsync(line, cancellationToken);

    /// <inheritdoc />
    protected override ValueTask OnMessageAsync(ReadOnlySequence<byte> message, MessageContext<ReadOnlySequence<byte>> context, CancellationToken cancellationToken)
    {
        if (expected is null)
        {
            throw new InvalidDataException("This session expects no inbound lines.");
        }

        if (expected.Produced == expected.Count)
        {
            throw new InvalidDataException($"Line {Received} arrived, but only {expected.Count} were sent.");
        }

        var frame = expected.Next();
        if (Mismatch(message, frame.Delivered.Span) is { } offset)
        {
            throw new InvalidDataException(
                $"Line {frame.Index} differs at byte {offset}: {message.Length} bytes arrived, {frame.Delivered.Length} expected "
                + $"(sent {frame.Line.Length} bytes with {(frame.CrLf ? "CRLF" : "LF")}; "
                + $"arrived {Excerpt(message, offset)}, expected {Excerpt(new ReadOnlySequence<byte>(frame.Delivered), offset)}).");
        }

        Received++;
        ReceivedBytes += message.Length;
        if (!message.IsSingleSegment)
        {
            MultiSegmentLines++;
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>The first offset where the two differ (a length difference counts), or null when they are equal.</summary>
    private static long? Mismatch(ReadOnlySequence<byte> actual, ReadOnlySpan<byte> expected)
    {
        var offset = 0;
        foreach (var segment in actual)
        {
            var span = segment.Span;
            var common = Math.Min(span.Length, expected.Length - offset);
            var differs = span[..common].CommonPrefixLength(expected.Slice(offset, common));
            if (differs < common || common < span.Length)
            {
                return offset + differs;
            }

            offset += common;
        }

        return offset == expected.Length ? null : offset;
    }

    private static string Excerpt(ReadOnlySequence<byte> bytes, long offset)
    {
        var from = Math.Max(0, offset - 8);
        var slice = bytes.Slice(Math.Min(from, bytes.Length));
        slice = slice.Slice(0, Math.Min(slice.Length, 24));
        return $"[{Convert.ToHexString(slice.ToArray())}] from byte {from}";
    }
}
