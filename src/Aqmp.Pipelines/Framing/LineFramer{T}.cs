using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Base class of line-delimited framers: a frame is the bytes up to a line feed (LF, <c>\n</c>);
/// a carriage return just before it (CRLF, as QEMU sends) is stripped too. Subclasses turn the
/// line's bytes into a message and back.
/// </summary>
/// <typeparam name="TMessage">The message type of the protocol.</typeparam>
/// <remarks>
/// <para>
/// The search is span-wide: the first buffered segment is searched with a vectorized
/// <see cref="MemoryExtensions.IndexOf{T}(ReadOnlySpan{T}, T)"/>, and the multi-segment path is
/// taken only when a line straddles segments. A line that arrives over many reads is not searched
/// again from its start on every read: past its first segment, the search resumes where the
/// previous call on the same line stopped (the <c>examined</c> position the session hands back),
/// so a long line costs one pass instead of the square of its length over the read size.
/// Parsing allocates nothing; what
/// <see cref="DecodeLine"/> allocates is the subclass's choice.
/// </para>
/// <para>
/// A line longer than <see cref="MaximumLineLength"/> (excluding its terminator) raises
/// <see cref="FrameTooLargeException"/> as soon as that is known: with a terminator in view, or
/// when more than the limit is buffered without one (one byte over may be the CR of a CRLF), so a
/// session buffers no more than the limit, plus that byte, plus one read for a line. Bytes left without a terminator when the stream ends raise
/// <see cref="IncompleteFrameException"/>, unless <see cref="AcceptUnterminatedLastLine"/> is set.
/// </para>
/// </remarks>
public abstract class LineFramer<TMessage> : IMessageFramer<TMessage>
{
    /// <summary>The default <see cref="MaximumLineLength"/>: 64 KiB, QEMU aqmp's <c>_limit</c>.</summary>
    public const int DefaultMaximumLineLength = 64 * 1024;

    private const byte LineFeed = (byte)'\n';
    private const byte CarriageReturn = (byte)'\r';

    /// <summary>Creates a line framer.</summary>
    /// <param name="maximumLineLength">The longest accepted line in bytes, excluding its terminator; at least 1.</param>
    /// <param name="writeCrLf">Whether outbound lines end with CRLF instead of LF.</param>
    /// <param name="acceptUnterminatedLastLine">
    /// Whether bytes left without a terminator when the peer ends the stream are delivered as a
    /// last line instead of raising <see cref="IncompleteFrameException"/>.
    /// </param>
    protected LineFramer(int maximumLineLength = DefaultMaximumLineLength, bool writeCrLf = false, bool acceptUnterminatedLastLine = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumLineLength, 1);
        MaximumLineLength = maximumLineLength;
        WriteCrLf = writeCrLf;
        AcceptUnterminatedLastLine = acceptUnterminatedLastLine;
    }

    /// <summary>The longest accepted inbound line in bytes, excluding its terminator.</summary>
    public int MaximumLineLength { get; }

    /// <summary>Whether outbound lines end with CRLF instead of LF.</summary>
    public bool WriteCrLf { get; }

    /// <summary>Whether an unterminated last line at end of stream is delivered instead of being an error.</summary>
    public bool AcceptUnterminatedLastLine { get; }

    /// <inheritdoc />
    public long? MaximumFrameLength => MaximumLineLength + 2L;

    /// <inheritdoc />
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        // Fast path: the whole line is in the first segment (always so for a single-segment buffer).
        var first = input.FirstSpan;
        var terminatorIndex = first.IndexOf(LineFeed);
        if (terminatorIndex >= 0)
        {
            var lineLength = terminatorIndex > 0 && first[terminatorIndex - 1] == CarriageReturn ? terminatorIndex - 1 : terminatorIndex;
            if (lineLength > MaximumLineLength)
            {
                ThrowFrameTooLarge(MaximumLineLength, lineLength);
            }

            if (input.IsSingleSegment)
            {
                // Positions are made from the segment's start, without seeking.
                var start = input.Start;
                var segment = start.GetObject();
                var startIndex = start.GetInteger();
                var lineEnd = new SequencePosition(segment, startIndex + terminatorIndex + 1);
                consumed = lineEnd;
                examined = lineEnd;
                message = DecodeLine(input.Slice(start, new SequencePosition(segment, startIndex + lineLength)));
                return true;
            }

            var end = input.GetPosition(terminatorIndex + 1);
            consumed = end;
            examined = end;
            message = DecodeLine(input.Slice(0, lineLength));
            return true;
        }

        return TryReadStraddlingLine(input, ref consumed, ref examined, out message);
    }

    /// <inheritdoc />
    public bool TryReadFinalMessage(in ReadOnlySequence<byte> remainder, out TMessage message)
    {
        if (!AcceptUnterminatedLastLine)
        {
            throw new IncompleteFrameException(remainder.Length);
        }

        var line = WithoutTrailingCarriageReturn(remainder);
        ThrowIfTooLong(line.Length);
        message = DecodeLine(line);
        return true;
    }

    /// <summary>
    /// Writes <paramref name="message"/> (through <see cref="EncodeLine"/>) and its line terminator.
    /// A subclass may override it, for example to leave a protocol's final message unterminated.
    /// </summary>
    /// <param name="message">The message to write.</param>
    /// <param name="output">The session's outbound buffer.</param>
    public virtual void WriteMessage(TMessage message, IBufferWriter<byte> output)
    {
        EncodeLine(message, output);
        if (WriteCrLf)
        {
            var span = output.GetSpan(2);
            span[0] = CarriageReturn;
            span[1] = LineFeed;
            output.Advance(2);
        }
        else
        {
            output.GetSpan(1)[0] = LineFeed;
            output.Advance(1);
        }
    }

    /// <summary>
    /// Turns one line's bytes (terminator stripped) into a message.
    /// </summary>
    /// <param name="line">
    /// The line. It points into the pipe's memory: see <see cref="IMessageFramer{TMessage}"/> for
    /// how long it stays valid.
    /// </param>
    /// <returns>The message.</returns>
    /// <exception cref="ProtocolException">The line is not a valid message.</exception>
    protected abstract TMessage DecodeLine(in ReadOnlySequence<byte> line);

    /// <summary>
    /// Writes a message's line content, without terminator, into <paramref name="output"/>.
    /// The content must not contain a line feed.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="output">The outbound buffer.</param>
    protected abstract void EncodeLine(TMessage message, IBufferWriter<byte> output);

    /// <summary>
    /// Throws when <paramref name="content"/>, about to be written as one line, contains a line feed
    /// (which would split it into two frames on the wire).
    /// </summary>
    /// <param name="content">The line content.</param>
    /// <exception cref="ArgumentException">The content contains a line feed.</exception>
    protected static void ThrowIfContainsLineFeed(ReadOnlySpan<byte> content)
    {
        if (content.Contains(LineFeed))
        {
            throw new ArgumentException("An outbound line must not contain a line feed.", nameof(content));
        }
    }

    /// <summary>
    /// The slow path of <see cref="TryReadMessage"/>, kept out of line so that the fast path stays
    /// small: no line feed in the first segment. Searches the rest segment by segment, then cuts
    /// the line with positions made from the segment the line feed is in (and the CR before it,
    /// even when that ended the previous segment), without seeking through the segments again. Bytes an
    /// earlier call already searched in vain (the session hands that position back while a line
    /// is incomplete) are not searched again: a long line costs one pass, not one per read.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryReadStraddlingLine(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        var firstLength = input.First.Length;
        if (firstLength < input.Length)
        {
            // Search segment by segment from where no earlier call looked, remembering where each
            // span starts, so that the line feed, the line's end and the next line's start are
            // positions made from the segment the line feed is in. The first span, which the fast
            // path searched, is only stepped over (its last byte may be a CR).
            SequencePosition lastByte = default; // the last byte walked before the current span
            var lastWasCarriageReturn = false;
            var searched = ExaminedLength(input, examined) <= firstLength;
            var next = searched ? input.Start : examined;
            while (true)
            {
                var spanStart = next;
                if (!input.TryGet(ref next, out var memory))
                {
                    break;
                }

                var span = memory.Span;
                var index = searched ? -1 : span.IndexOf(LineFeed);
                searched = false;
                if (index >= 0)
                {
                    var segment = spanStart.GetObject();
                    var lineFeedIndex = spanStart.GetInteger() + index;
                    var lineFeed = new SequencePosition(segment, lineFeedIndex);
                    var line = index > 0
                        ? input.Slice(input.Start, span[index - 1] == CarriageReturn ? new SequencePosition(segment, lineFeedIndex - 1) : lineFeed)
                        : lastByte.GetObject() is not null
                            ? input.Slice(input.Start, lastWasCarriageReturn ? lastByte : lineFeed)
                            : WithoutTrailingCarriageReturn(input.Slice(input.Start, lineFeed));
                    ThrowIfTooLong(line.Length);

                    // Past the line feed; at a segment's end, the next segment's start (as a pipe's positions are).
                    var end = index + 1 < span.Length ? new SequencePosition(segment, lineFeedIndex + 1) : input.GetPosition(1, lineFeed);
                    consumed = end;
                    examined = end;
                    message = DecodeLine(line);
                    return true;
                }

                if (!span.IsEmpty)
                {
                    lastByte = new SequencePosition(spanStart.GetObject(), spanStart.GetInteger() + span.Length - 1);
                    lastWasCarriageReturn = span[^1] == CarriageReturn;
                }
            }
        }

        ThrowIfUnterminatedTooLong(input);
        examined = input.End;
        message = default!;
        return false;
    }

    /// <summary>How many bytes of <paramref name="input"/> lie before <paramref name="examined"/>; 0 for its start or no position.</summary>
    private static long ExaminedLength(in ReadOnlySequence<byte> input, SequencePosition examined)
        => examined.GetObject() is null || examined.Equals(input.Start) ? 0 : input.Slice(input.Start, examined).Length;

    private void ThrowIfTooLong(long lineLength)
    {
        if (lineLength > MaximumLineLength)
        {
            ThrowFrameTooLarge(MaximumLineLength, lineLength);
        }
    }

    [DoesNotReturn]
    private static void ThrowFrameTooLarge(int maximumLength, long lineLength) => throw new FrameTooLargeException(maximumLength, lineLength);

    /// <summary>
    /// A line without its last byte if that is a CR (of a CRLF). In pipe memory it is cut at a
    /// position made from the line's end when the CR lies in the same segment, instead of seeking
    /// to it through the segments.
    /// </summary>
    private static ReadOnlySequence<byte> WithoutTrailingCarriageReturn(in ReadOnlySequence<byte> line)
    {
        if (line.IsEmpty)
        {
            return line;
        }

        var end = line.End;
        var index = end.GetInteger();
        if (index > 0 && end.GetObject() is ReadOnlySequenceSegment<byte> segment)
        {
            return segment.Memory.Span[index - 1] == CarriageReturn ? line.Slice(line.Start, new SequencePosition(segment, index - 1)) : line;
        }

        // The last byte, past any empty segment (a line may start at the very end of one).
        return new SequenceReader<byte>(line.Slice(line.Length - 1)).TryPeek(out var last) && last == CarriageReturn ? line.Slice(0, line.Length - 1) : line;
    }

    private void ThrowIfUnterminatedTooLong(in ReadOnlySequence<byte> input)
    {
        var length = input.Length;
        if (length <= MaximumLineLength)
        {
            return;
        }

        // Exactly one byte over may still be the CR of a CRLF whose LF has not arrived yet.
        if (length == MaximumLineLength + 1L && WithoutTrailingCarriageReturn(input).Length == MaximumLineLength)
        {
            return;
        }

        ThrowFrameTooLarge(MaximumLineLength, length);
    }
}
