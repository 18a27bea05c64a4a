using System.Buffers;

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
/// taken only when a line straddles segments. Parsing allocates nothing; what
/// <see cref="DecodeLine"/> allocates is the subclass's choice.
/// </para>
/// <para>
/// A line longer than <see cref="MaximumLineLength"/> (excluding its terminator) raises
/// <see cref="FrameTooLargeException"/> as soon as that is known: with a terminator in view, or
/// when more than the limit is buffered without one, so a session buffers no more than the limit,
/// plus its receive pipe's pause threshold of bytes not yet examined, plus one read, for a line. Bytes left without a terminator when the stream ends raise
/// <see cref="IncompleteFrameException"/>, unless <see cref="AcceptUnterminatedLastLine"/> is set.
/// </para>
/// </remarks>
public abstract class LineFramer<TMessage> : IMessageFramer<TMessage>
{
    /// <summary>The default <see cref="MaximumLineLength"/>: 64 KiB, the seed's <c>_limit</c>.</summary>
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
        // Fast path: the terminator is in the first segment (always so for a single-segment buffer).
        var first = input.FirstSpan;
        var index = first.IndexOf(LineFeed);
        long terminatorIndex;
        if (index >= 0)
        {
            terminatorIndex = index;
        }
        else if (first.Length == input.Length)
        {
            terminatorIndex = -1;
        }
        else
        {
            // Slow path: the line straddles segments; search the rest segment by segment.
            var rest = input.Slice(first.Length);
            var found = rest.PositionOf(LineFeed);
            terminatorIndex = found is { } position ? first.Length + rest.Slice(0, position).Length : -1;
        }

        if (terminatorIndex < 0)
        {
            ThrowIfUnterminatedTooLong(input);
            examined = input.End;
            message = default!;
            return false;
        }

        var lineLength = terminatorIndex;
        if (lineLength > 0 && ByteAt(input, first, lineLength - 1) == CarriageReturn)
        {
            lineLength--;
        }

        if (lineLength > MaximumLineLength)
        {
            throw new FrameTooLargeException(MaximumLineLength, lineLength);
        }

        var end = input.GetPosition(terminatorIndex + 1);
        consumed = end;
        examined = end;
        message = DecodeLine(input.Slice(0, lineLength));
        return true;
    }

    /// <inheritdoc />
    public bool TryReadFinalMessage(in ReadOnlySequence<byte> remainder, out TMessage message)
    {
        if (!AcceptUnterminatedLastLine)
        {
            throw new IncompleteFrameException(remainder.Length);
        }

        var length = remainder.Length;
        if (ByteAt(remainder, remainder.FirstSpan, length - 1) == CarriageReturn)
        {
            length--;
        }

        if (length > MaximumLineLength)
        {
            throw new FrameTooLargeException(MaximumLineLength, length);
        }

        message = DecodeLine(remainder.Slice(0, length));
        return true;
    }

    /// <inheritdoc />
    public void WriteMessage(TMessage message, IBufferWriter<byte> output)
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

    private void ThrowIfUnterminatedTooLong(in ReadOnlySequence<byte> input)
    {
        var length = input.Length;
        if (length <= MaximumLineLength)
        {
            return;
        }

        // Exactly one byte over may still be the CR of a CRLF whose LF has not arrived yet.
        if (length == MaximumLineLength + 1L && ByteAt(input, input.FirstSpan, length - 1) == CarriageReturn)
        {
            return;
        }

        throw new FrameTooLargeException(MaximumLineLength, length);
    }

    private static byte ByteAt(in ReadOnlySequence<byte> sequence, ReadOnlySpan<byte> first, long index)
    {
        if (index < first.Length)
        {
            return first[(int)index];
        }

        return sequence.Slice(index, 1).FirstSpan[0];
    }
}
