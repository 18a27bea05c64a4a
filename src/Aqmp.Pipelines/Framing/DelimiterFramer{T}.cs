using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Base class of delimiter framers: a frame is the bytes up to the earliest of one or several
/// delimiters, each any non-empty byte sequence (the rule of DotNetty's
/// <c>DelimiterBasedFrameDecoder</c>). Subclasses turn the frame's bytes into a message and back.
/// </summary>
/// <typeparam name="TMessage">The message type of the protocol.</typeparam>
/// <remarks>
/// <para>
/// <b>Which delimiter ends a frame.</b> The one that starts earliest; of two that start at the same
/// byte, the one listed first. A delimiter found is not final while another, whose first bytes end
/// the buffer, may still complete earlier (or at the same byte, listed before it): the framer then
/// waits for more bytes, so a stream splits into the same frames however its reads are cut. With
/// one delimiter that never happens.
/// </para>
/// <para>
/// <b>Search.</b> The buffer's first segment is searched in one vectorized pass: for the one
/// delimiter with <see cref="MemoryExtensions.IndexOf{T}(ReadOnlySpan{T}, ReadOnlySpan{T})"/>, or,
/// with several, for the bytes that start any of them, each such byte checked against the
/// delimiters in order; a frame whose
/// delimiter lies past it (or, with several delimiters, near its end) takes a path kept out of line
/// that searches the following segments one at a time, each in one vectorized pass for the bytes
/// that start a delimiter (comparing across segments only a delimiter that starts in a segment's
/// last bytes), and resumes where the previous call on the same frame stopped (the
/// <c>examined</c> position the session hands back, less the longest delimiter's length minus one,
/// for a delimiter cut by a read), so a long frame costs one pass. Parsing allocates nothing. The framer keeps no per-stream state:
/// one instance may serve many sessions.
/// </para>
/// <para>
/// <b>Limits.</b> A frame whose payload (excluding its delimiter) is longer than
/// <see cref="MaximumPayloadLength"/> raises <see cref="FrameTooLargeException"/> as soon as that is
/// known: with its delimiter in view, or when more than the limit plus the longest delimiter's length
/// minus one is buffered without one, so a session buffers no more than that plus one read. Bytes
/// left over when the stream ends raise <see cref="IncompleteFrameException"/> (the interface's default).
/// </para>
/// </remarks>
public abstract class DelimiterFramer<TMessage> : IMessageFramer<TMessage>
{
    /// <summary>The default <see cref="MaximumPayloadLength"/>: 64 KiB.</summary>
    public const int DefaultMaximumPayloadLength = 64 * 1024;

    /// <summary>What a segment's search returns when a delimiter cut by the input's end may still complete first.</summary>
    private const int Undecided = -2;

    private readonly byte[][] _delimiters;
    private readonly int _longestDelimiter;

    // Decided once here: with one delimiter, its bytes (searched for at once); with several, the
    // bytes any of them starts with (candidates, each checked against the delimiters in order).
    private readonly byte[]? _onlyDelimiter;
    private readonly SearchValues<byte> _firstBytes;

    /// <summary>Creates a framer with one delimiter.</summary>
    /// <param name="delimiter">The delimiter: any non-empty byte sequence (copied).</param>
    /// <param name="maximumPayloadLength">The longest accepted inbound frame in bytes, excluding its delimiter; at least 0.</param>
    /// <param name="stripDelimiter">Whether an inbound message leaves its delimiter out (the default) or ends with it.</param>
    /// <exception cref="ArgumentException">The delimiter is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPayloadLength"/> is negative.</exception>
    protected DelimiterFramer(ReadOnlySpan<byte> delimiter, int maximumPayloadLength = DefaultMaximumPayloadLength, bool stripDelimiter = true)
        : this([delimiter.ToArray()], maximumPayloadLength, stripDelimiter)
    {
    }

    /// <summary>Creates a framer with several alternative delimiters.</summary>
    /// <param name="delimiters">
    /// The delimiters, each any non-empty byte sequence (copied), in order of preference between two
    /// that start at the same byte; the first is the one written after outbound messages.
    /// </param>
    /// <param name="maximumPayloadLength">The longest accepted inbound frame in bytes, excluding its delimiter; at least 0.</param>
    /// <param name="stripDelimiter">Whether an inbound message leaves its delimiter out (the default) or ends with it.</param>
    /// <exception cref="ArgumentException">There is no delimiter, or one is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPayloadLength"/> is negative.</exception>
    protected DelimiterFramer(IEnumerable<byte[]> delimiters, int maximumPayloadLength = DefaultMaximumPayloadLength, bool stripDelimiter = true)
    {
        ArgumentNullException.ThrowIfNull(delimiters);
        ArgumentOutOfRangeException.ThrowIfNegative(maximumPayloadLength);
        _delimiters = delimiters.Select(d => d is { Length: > 0 } ? d.ToArray() : throw new ArgumentException("A delimiter is at least one byte long.", nameof(delimiters))).ToArray();
        if (_delimiters.Length == 0)
        {
            throw new ArgumentException("A delimiter framer needs at least one delimiter.", nameof(delimiters));
        }

        _longestDelimiter = _delimiters.Max(d => d.Length);
        _onlyDelimiter = _delimiters.Length == 1 ? _delimiters[0] : null;
        _firstBytes = SearchValues.Create(_delimiters.Select(d => d[0]).Distinct().ToArray());
        Delimiters = Array.AsReadOnly(_delimiters.Select(d => (ReadOnlyMemory<byte>)d).ToArray());
        MaximumPayloadLength = maximumPayloadLength;
        StripDelimiter = stripDelimiter;
    }

    /// <summary>The delimiters, in order of preference; the first is written after outbound messages.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Delimiters { get; }

    /// <summary>The longest accepted inbound frame in bytes, excluding its delimiter.</summary>
    public int MaximumPayloadLength { get; }

    /// <summary>Whether an inbound message leaves its delimiter out (otherwise it ends with it).</summary>
    public bool StripDelimiter { get; }

    /// <inheritdoc />
    /// <remarks>The payload limit plus the longest delimiter.</remarks>
    long? IMessageFramer<TMessage>.MaximumFrameLength => MaximumPayloadLength + (long)_longestDelimiter;

    /// <inheritdoc />
    /// <remarks>
    /// On success <paramref name="consumed"/> and <paramref name="examined"/> are just past the
    /// delimiter; otherwise <paramref name="examined"/> is the input's end. The frame passed to
    /// <see cref="DecodeFrame"/> is a slice of <paramref name="input"/>.
    /// </remarks>
    /// <exception cref="FrameTooLargeException">The frame is longer than <see cref="MaximumPayloadLength"/>.</exception>
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        // Fast path: a delimiter in the first segment that no other can still overtake (always so
        // with one delimiter: one starting earlier would have been found).
        if (_onlyDelimiter is not { } only)
        {
            return TryReadWithSeveralDelimiters(input, ref consumed, ref examined, out message);
        }

        var first = input.FirstSpan;
        var index = first.IndexOf(only);
        if (index >= 0)
        {
            CutInFirstSegment(input, index, only.Length, ref consumed, ref examined, out message);
            return true;
        }

        // Bytes that cannot start a delimiter wholly in the first span are not searched again.
        return TryReadStraddlingFrame(input, Math.Max(0, first.Length - only.Length + 1), ref consumed, ref examined, out message);
    }

    /// <summary>Writes <paramref name="message"/> (through <see cref="EncodeFrame"/>) and the first delimiter.</summary>
    /// <param name="message">The message to write.</param>
    /// <param name="output">The session's outbound buffer.</param>
    public void WriteMessage(TMessage message, IBufferWriter<byte> output)
    {
        EncodeFrame(message, output);
        output.Write(_delimiters[0]);
    }

    /// <summary>Turns one frame's bytes (its delimiter stripped, unless <see cref="StripDelimiter"/> is off) into a message.</summary>
    /// <param name="frame">
    /// The frame. It points into the pipe's memory: see <see cref="IMessageFramer{TMessage}"/> for
    /// how long it stays valid.
    /// </param>
    /// <returns>The message.</returns>
    /// <exception cref="ProtocolException">The frame is not a valid message.</exception>
    protected abstract TMessage DecodeFrame(in ReadOnlySequence<byte> frame);

    /// <summary>
    /// Writes a message's content, without delimiter, into <paramref name="output"/>. The content
    /// must not end its frame early on the way back: see <see cref="ThrowIfContainsDelimiter"/>.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="output">The outbound buffer.</param>
    protected abstract void EncodeFrame(TMessage message, IBufferWriter<byte> output);

    /// <summary>
    /// Throws when <paramref name="content"/>, written before the first delimiter, would not read
    /// back as one frame: when it holds a delimiter, or ends with the first bytes of one that the
    /// written delimiter would complete (or might, with the next frame's bytes).
    /// </summary>
    /// <param name="content">The frame's content.</param>
    /// <exception cref="ArgumentException">The content would end its frame early.</exception>
    protected void ThrowIfContainsDelimiter(in ReadOnlySequence<byte> content)
    {
        var written = _delimiters[0];
        foreach (var delimiter in _delimiters)
        {
            var contains = content.IsSingleSegment
                ? content.FirstSpan.IndexOf(delimiter) >= 0
                : new SequenceReader<byte>(content).TryReadTo(out ReadOnlySequence<byte> _, delimiter, advancePastDelimiter: false);
            if (contains)
            {
                throw new ArgumentException("An outbound frame must not contain a delimiter.", nameof(content));
            }

            for (var n = (int)Math.Min(delimiter.Length - 1, content.Length); n >= 1; n--)
            {
                var rest = delimiter.AsSpan(n);
                var overlap = Math.Min(rest.Length, written.Length);
                if (rest[..overlap].SequenceEqual(written.AsSpan(0, overlap)) && new SequenceReader<byte>(content.Slice(content.Length - n)).IsNext(delimiter.AsSpan(0, n)))
                {
                    throw new ArgumentException("An outbound frame must not end with the start of a delimiter that the written delimiter completes.", nameof(content));
                }
            }
        }
    }

    /// <summary>
    /// The slow path of <see cref="TryReadMessage"/>, kept out of line so that the fast path stays
    /// small: no delimiter in the first segment, or one near its end that another may overtake.
    /// Searches from <paramref name="searched"/> or from where an earlier call on the same frame
    /// stopped (less a delimiter cut by a read), whichever is further.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryReadStraddlingFrame(in ReadOnlySequence<byte> input, long searched, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        var from = Math.Max(searched, ExaminedLength(input, examined) - (_longestDelimiter - 1));
        if (TryFindEarliest(input, from, out var found))
        {
            ThrowIfTooLong(found.PayloadLength);
            var frameEnd = found.Segment is null
                ? input.GetPosition(found.Length, found.Start)
                : new SequencePosition(found.Segment, found.Index + found.Length);
            consumed = frameEnd;
            examined = frameEnd;
            Deliver(input, StripDelimiter ? found.Start : frameEnd, out message);
            return true;
        }

        // Whatever arrives next, the payload is at least this long: all but a delimiter's first bytes.
        var buffered = input.Length;
        if (buffered - (_longestDelimiter - 1) > MaximumPayloadLength)
        {
            ThrowFrameTooLarge(MaximumPayloadLength, buffered);
        }

        examined = input.End;
        message = default!;
        return false;
    }

    /// <summary>
    /// Finds the earliest delimiter of <paramref name="input"/> starting at or after
    /// <paramref name="from"/>, when that is final (no delimiter whose first bytes end the input
    /// may still complete before it, or at the same byte while listed before it), segment by
    /// segment: each segment is searched in one vectorized pass for the bytes that start a
    /// delimiter, each such byte compared with the delimiters in order, within the segment or, for
    /// one in its last bytes, which a delimiter may continue past, across segments.
    /// </summary>
    private bool TryFindEarliest(in ReadOnlySequence<byte> input, long from, out FoundDelimiter found)
    {
        var current = input.Start;
        var next = current;
        long offset = 0;
        while (input.TryGet(ref next, out var memory))
        {
            var span = memory.Span;
            if (from - offset < span.Length)
            {
                var searchFrom = (int)Math.Max(0, from - offset);
                var index = IndexOfEarliest(input, next, span, searchFrom, out var delimiterLength);
                if (index == Undecided)
                {
                    break;
                }

                if (index >= 0)
                {
                    var segment = current.GetObject();
                    var segmentIndex = current.GetInteger() + index;
                    var within = index + delimiterLength <= span.Length;
                    found = new FoundDelimiter(
                        new SequencePosition(segment, segmentIndex),
                        within ? segment : null,
                        segmentIndex,
                        delimiterLength,
                        offset + index);
                    return true;
                }
            }

            offset += span.Length;
            current = next;
        }

        found = default;
        return false;
    }

    /// <summary>
    /// Where the earliest delimiter starts in <paramref name="span"/> at or after
    /// <paramref name="searchFrom"/> (of two at the same byte, the one listed first),
    /// wholly within the span or continued in the segments from <paramref name="next"/> on; -1 if
    /// none does; <see cref="Undecided"/> when one whose first bytes end the input may still
    /// complete there, or at the same byte while listed before the one found.
    /// </summary>
    private int IndexOfEarliest(in ReadOnlySequence<byte> input, SequencePosition next, ReadOnlySpan<byte> span, int searchFrom, out int delimiterLength)
    {
        var index = searchFrom;
        while (true)
        {
            var candidate = span[index..].IndexOfAny(_firstBytes);
            if (candidate < 0)
            {
                delimiterLength = 0;
                return -1;
            }

            index += candidate;
            var rest = span[index..];
            foreach (var delimiter in _delimiters)
            {
                var match = rest.Length >= delimiter.Length
                    ? rest.StartsWith(delimiter) ? Match.Whole : Match.None
                    : Continues(input, next, rest, delimiter);
                if (match != Match.None)
                {
                    delimiterLength = delimiter.Length;
                    return match == Match.Whole ? index : Undecided;
                }
            }

            index++;
        }
    }

    /// <summary>
    /// Whether <paramref name="delimiter"/> starts with <paramref name="head"/> (a segment's last
    /// bytes) and goes on in the segments from <paramref name="next"/> on: wholly, not at all, or
    /// as far as the input goes.
    /// </summary>
    private static Match Continues(in ReadOnlySequence<byte> input, SequencePosition next, ReadOnlySpan<byte> head, ReadOnlySpan<byte> delimiter)
    {
        if (!delimiter.StartsWith(head))
        {
            return Match.None;
        }

        var rest = delimiter[head.Length..];
        while (!rest.IsEmpty)
        {
            if (!input.TryGet(ref next, out var memory))
            {
                return Match.CutByEnd;
            }

            var span = memory.Span;
            var length = Math.Min(span.Length, rest.Length);
            if (!span[..length].SequenceEqual(rest[..length]))
            {
                return Match.None;
            }

            rest = rest[length..];
        }

        return Match.Whole;
    }

    /// <summary>The frame ending at a delimiter at <paramref name="index"/> of the first segment, cut with positions made from the segment's start, without seeking.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CutInFirstSegment(in ReadOnlySequence<byte> input, int index, int delimiterLength, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        ThrowIfTooLong(index);
        var start = input.Start;
        var segment = start.GetObject();
        var startIndex = start.GetInteger();
        var end = new SequencePosition(segment, startIndex + index + delimiterLength);
        consumed = end;
        examined = end;
        Deliver(input, StripDelimiter ? new SequencePosition(segment, startIndex + index) : end, out message);
    }

    /// <summary>
    /// The message of <paramref name="input"/>'s bytes up to <paramref name="end"/>: that slice
    /// itself for <see cref="DelimiterFramer"/>, whose messages are frames, cut straight into
    /// <paramref name="message"/> without a virtual call; otherwise what <see cref="DecodeFrame"/>
    /// makes of it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Deliver(in ReadOnlySequence<byte> input, SequencePosition end, out TMessage message)
    {
        if (typeof(TMessage) == typeof(ReadOnlySequence<byte>) && this is DelimiterFramer)
        {
            Unsafe.SkipInit(out message);
            Unsafe.As<TMessage, ReadOnlySequence<byte>>(ref message) = input.Slice(input.Start, end);
        }
        else
        {
            message = DecodeFrame(input.Slice(input.Start, end));
        }
    }

    /// <summary>
    /// <see cref="TryReadMessage"/> with several delimiters, out of line so that the one-delimiter
    /// path stays small: a delimiter in the first segment that no other can still overtake is cut
    /// there, anything else takes the straddling path.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryReadWithSeveralDelimiters(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        var (index, delimiterLength, searched) = IndexOfEarliestDecided(input.FirstSpan);
        if (index >= 0)
        {
            CutInFirstSegment(input, index, delimiterLength, ref consumed, ref examined, out message);
            return true;
        }

        return TryReadStraddlingFrame(input, searched, ref consumed, ref examined, out message);
    }

    /// <summary>
    /// With several delimiters: where the earliest delimiter in <paramref name="span"/> starts, when
    /// that is final (every delimiter starting at or before it lies wholly in the span), with its
    /// length; of two at the same byte, the one listed first. Otherwise -1, with the bytes known to
    /// start no delimiter. One pass over the bytes that start a delimiter, each checked against the
    /// delimiters in order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private (int Index, int DelimiterLength, int Searched) IndexOfEarliestDecided(ReadOnlySpan<byte> span)
    {
        var from = 0;
        while (true)
        {
            var candidate = span[from..].IndexOfAny(_firstBytes);
            if (candidate < 0)
            {
                return (-1, 0, span.Length);
            }

            var index = from + candidate;
            if (index > span.Length - _longestDelimiter)
            {
                return (-1, 0, index);
            }

            var rest = span[index..];
            foreach (var delimiter in _delimiters)
            {
                if (rest.StartsWith(delimiter))
                {
                    return (index, delimiter.Length, index);
                }
            }

            from = index + 1;
        }
    }

    /// <summary>How many bytes of <paramref name="input"/> lie before <paramref name="examined"/>; 0 for its start or no position.</summary>
    private static long ExaminedLength(in ReadOnlySequence<byte> input, SequencePosition examined)
        => examined.GetObject() is null || examined.Equals(input.Start) ? 0 : input.Slice(input.Start, examined).Length;

    private void ThrowIfTooLong(long payloadLength)
    {
        if (payloadLength > MaximumPayloadLength)
        {
            ThrowFrameTooLarge(MaximumPayloadLength, payloadLength);
        }
    }

    [DoesNotReturn]
    private static void ThrowFrameTooLarge(long maximumLength, long observedLength) => throw new FrameTooLargeException(maximumLength, observedLength);

    /// <summary>How a delimiter compares with bytes that go on past a segment.</summary>
    private enum Match
    {
        /// <summary>It differs.</summary>
        None,

        /// <summary>It is there whole.</summary>
        Whole,

        /// <summary>It is there as far as the input goes, which ends before it does.</summary>
        CutByEnd,
    }

    /// <summary>A delimiter found: where it starts (with its segment and index there when it lies wholly in that segment), its length, and the payload's length before it.</summary>
    private readonly record struct FoundDelimiter(SequencePosition Start, object? Segment, int Index, int Length, long PayloadLength);
}
