using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Base class of JSON-stream framers: a frame is one complete top-level JSON value, delimited by
/// its own structure rather than by a terminator, as a JSON streamer reads its input. Values may
/// share a line or follow each other with nothing between them; whitespace (space, tab, CR, LF)
/// between values is skipped. Subclasses turn a value's bytes into a message and back.
/// </summary>
/// <typeparam name="TMessage">The message type of the protocol.</typeparam>
/// <remarks>
/// <para>
/// <b>What ends a value.</b> An object or an array ends at the bracket that closes its first one
/// (brackets are counted, not matched by kind), a string at its closing quote; a bracket or quote
/// inside a string, or a quote escaped with a backslash, does not count. Either is delivered as
/// soon as its last byte arrives. A number or literal (<c>true</c>, <c>false</c>, <c>null</c>) at
/// top level has no closing byte: it runs while bytes could continue it (ASCII letters, digits,
/// <c>+</c>, <c>-</c>, <c>.</c>) and ends at the first byte that cannot, which is left for the
/// next value. So a top-level scalar is delivered only once the byte after it has arrived, or
/// when the stream ends (<see cref="TryReadFinalMessage"/>); a peer that sends one and waits
/// must follow it with whitespace.
/// </para>
/// <para>
/// <b>What is checked.</b> Only what framing needs: between values, a byte that cannot start one
/// (a stray <c>}</c> or <c>]</c>, a comma, a colon, a control or non-ASCII byte, any letter but
/// <c>t</c>, <c>f</c>, <c>n</c>) raises <see cref="UnexpectedByteException"/>. The grammar inside a
/// value is not validated: <c>{"a" 1}</c> or <c>{"a":[1}]</c> is framed and left to
/// <see cref="DecodeValue"/>'s parser to reject, as is a scalar such as <c>12ab</c>.
/// </para>
/// <para>
/// <b>Limits.</b> A value longer than <see cref="MaximumValueLength"/> raises
/// <see cref="FrameTooLargeException"/> as soon as that is known: when it ends, or when more than
/// the limit of it is buffered unfinished, so a session buffers no more than the limit plus one
/// read of a value that never ends. A run of whitespace longer than the limit with no value after
/// it raises the same error, so that whitespace alone cannot make a session buffer without bound.
/// An object or array opened deeper than <see cref="MaximumDepth"/> raises
/// <see cref="FrameNestingException"/> at its opening bracket. At the end of the stream a pending
/// top-level scalar is delivered, whitespace alone is a clean end, and an unfinished object,
/// array or string raises <see cref="IncompleteFrameException"/>.
/// </para>
/// <para>
/// <b>One stream at a time.</b> A value that arrives over many reads is scanned once: the framer
/// keeps its scanner's state (depth, inside a string, after a backslash, bytes scanned) and, when
/// the session hands back the <c>examined</c> position of its last call, resumes there instead of
/// scanning from the start. That state belongs to one stream, so an instance serves one session
/// at a time; <see cref="Reset"/> (which the session calls before each new connection) forgets it.
/// The state is used only when the position handed in is exactly where the last call stopped,
/// with the same number of bytes before it; any other position scans from the input's start.
/// <see cref="WriteMessage"/> keeps no state and may run alongside reading.
/// </para>
/// <para>
/// <b>Cost.</b> The first buffered segment is scanned with vectorized searches for the bytes that
/// matter in the current state (brackets and quotes; quote and backslash inside a string), and the
/// multi-segment path is taken only when a value straddles segments. Framing allocates nothing;
/// what <see cref="DecodeValue"/> allocates is the subclass's choice.
/// </para>
/// </remarks>
public abstract class JsonStreamFramer<TMessage> : IMessageFramer<TMessage>
{
    /// <summary>The default <see cref="MaximumValueLength"/>: 64 KiB, as the line framers' default line length.</summary>
    public const int DefaultMaximumValueLength = 64 * 1024;

    /// <summary>The default <see cref="MaximumDepth"/>: 64, the default depth limit of <c>System.Text.Json</c>'s readers.</summary>
    public const int DefaultMaximumDepth = 64;

    /// <summary>The default <see cref="Separator"/>: a line feed.</summary>
    public const string DefaultSeparator = "\n";

    private static readonly SearchValues<byte> Whitespace = SearchValues.Create(" \t\r\n"u8);
    private static readonly SearchValues<byte> ContainerBytes = SearchValues.Create("{}[]\""u8);
    private static readonly SearchValues<byte> StringBytes = SearchValues.Create("\"\\"u8);
    private static readonly SearchValues<byte> ScalarBytes = SearchValues.Create("+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    private readonly byte[] _separator;

    // The scanner: how far into the frame it has looked, and what it was inside of there.
    private long _scanned;
    private long _valueStart;
    private SequencePosition _valueStartPosition;
    private int _depth;
    private bool _inString;
    private bool _afterBackslash;
    private bool _inScalar;

    // Where the last call that returned false stopped (its input's end); default otherwise.
    private SequencePosition _stoppedAt;

    /// <summary>Creates a JSON-stream framer.</summary>
    /// <param name="maximumValueLength">The longest accepted value in bytes; at least 1.</param>
    /// <param name="maximumDepth">How many objects and arrays may be open inside each other; at least 1.</param>
    /// <param name="separator">
    /// What <see cref="WriteMessage"/> writes after each value: whitespace only (space, tab, CR,
    /// LF), or empty for nothing. Empty suits a peer that sends objects, arrays and strings only:
    /// top-level scalars written back to back would run together.
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException">A limit is below 1.</exception>
    /// <exception cref="ArgumentException"><paramref name="separator"/> holds something other than whitespace.</exception>
    protected JsonStreamFramer(int maximumValueLength = DefaultMaximumValueLength, int maximumDepth = DefaultMaximumDepth, string separator = DefaultSeparator)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumValueLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumDepth, 1);
        ArgumentNullException.ThrowIfNull(separator);
        if (separator.AsSpan().ContainsAnyExcept(" \t\r\n"))
        {
            throw new ArgumentException("The separator must be whitespace only (space, tab, CR, LF).", nameof(separator));
        }

        MaximumValueLength = maximumValueLength;
        MaximumDepth = maximumDepth;
        Separator = separator;
        _separator = [.. separator.Select(c => (byte)c)];
        ResetScan();
    }

    /// <summary>The longest accepted inbound value in bytes (whitespace around it excluded).</summary>
    public int MaximumValueLength { get; }

    /// <summary>How many objects and arrays may be open inside each other in an inbound value.</summary>
    public int MaximumDepth { get; }

    /// <summary>What <see cref="WriteMessage"/> writes after each value: whitespace, or empty.</summary>
    public string Separator { get; }

    /// <inheritdoc />
    /// <remarks>Twice <see cref="MaximumValueLength"/>: up to that much whitespace before a value of up to that length.</remarks>
    public long? MaximumFrameLength => 2L * MaximumValueLength;

    /// <summary>Forgets the scanner's state, so that the next call scans its input from the start. The session calls it before each new connection.</summary>
    public void Reset() => ResetScan();

    /// <inheritdoc />
    /// <remarks>
    /// On success <c>consumed</c> and <c>examined</c> are just past the value (the whitespace
    /// before it consumed with it); on failure <c>examined</c> is the input's end and whitespace
    /// before an unfinished value stays unconsumed.
    /// </remarks>
    /// <exception cref="UnexpectedByteException">A byte between values cannot start one.</exception>
    /// <exception cref="FrameNestingException">A value nests deeper than <see cref="MaximumDepth"/>.</exception>
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        if (IsWhereScanStopped(input, examined))
        {
            return TryReadRest(input, examined, ref consumed, ref examined, out message);
        }

        // Fast path: a fresh scan of the first segment (all of a single-segment buffer).
        ResetScan();
        var start = input.Start;
        var first = input.FirstSpan;
        var end = ScanSpan(first, start);
        if (end >= 0)
        {
            var valueEnd = end < first.Length || input.IsSingleSegment ? new SequencePosition(start.GetObject(), start.GetInteger() + end) : StartOfSecondSpan(input);
            return Deliver(input, valueEnd, ref consumed, ref examined, out message);
        }

        return input.IsSingleSegment ? Stop(input, ref examined, out message) : TryReadRest(input, StartOfSecondSpan(input), ref consumed, ref examined, out message);
    }

    /// <inheritdoc />
    /// <remarks>
    /// A pending top-level number or literal is delivered (its end is the stream's end); whitespace
    /// alone returns <see langword="false"/>, which the session treats as an end at a frame boundary.
    /// </remarks>
    /// <exception cref="IncompleteFrameException">An object, array or string is unfinished.</exception>
    /// <exception cref="FrameTooLargeException">The pending scalar, or the whitespace, is longer than <see cref="MaximumValueLength"/>.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="remainder"/> holds a complete value, which <see cref="TryReadMessage"/> should have delivered.</exception>
    public bool TryReadFinalMessage(in ReadOnlySequence<byte> remainder, out TMessage message)
    {
        ResetScan();
        try
        {
            var next = remainder.Start;
            while (true)
            {
                var spanStart = next;
                if (!remainder.TryGet(ref next, out var memory))
                {
                    break;
                }

                if (ScanSpan(memory.Span, spanStart) >= 0)
                {
                    throw new InvalidOperationException("The remainder holds a complete value: TryReadMessage delivers it before the stream ends.");
                }
            }

            ThrowIfPendingTooLong();
            if (_valueStart < 0)
            {
                message = default!;
                return false;
            }

            if (!_inScalar)
            {
                throw new IncompleteFrameException(remainder.Length);
            }

            message = DecodeValue(remainder.Slice(_valueStartPosition));
            return true;
        }
        finally
        {
            ResetScan();
        }
    }

    /// <inheritdoc />
    public void WriteMessage(TMessage message, IBufferWriter<byte> output)
    {
        EncodeValue(message, output);
        if (_separator.Length > 0)
        {
            output.Write(_separator);
        }
    }

    /// <summary>Turns one value's bytes (no whitespace around them) into a message.</summary>
    /// <param name="value">
    /// The value. It points into the pipe's memory: see <see cref="IMessageFramer{TMessage}"/> for
    /// how long it stays valid. Its grammar has not been checked beyond its brackets and quotes.
    /// </param>
    /// <returns>The message.</returns>
    /// <exception cref="ProtocolException">The value is not a valid message.</exception>
    protected abstract TMessage DecodeValue(in ReadOnlySequence<byte> value);

    /// <summary>
    /// Writes one message as exactly one JSON value into <paramref name="output"/>; the base adds
    /// <see cref="Separator"/>.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="output">The outbound buffer.</param>
    protected abstract void EncodeValue(TMessage message, IBufferWriter<byte> output);

    /// <summary>
    /// The slow path of <see cref="TryReadMessage"/>, kept out of line: scans segment by segment
    /// from <paramref name="from"/> (the second span after a fresh first one, or where the last
    /// call stopped), and cuts the value with positions made from the segments it lies in.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryReadRest(in ReadOnlySequence<byte> input, SequencePosition from, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        var next = from;
        while (true)
        {
            var spanStart = next;
            if (!input.TryGet(ref next, out var memory))
            {
                return Stop(input, ref examined, out message);
            }

            var span = memory.Span;
            var end = ScanSpan(span, spanStart);
            if (end >= 0)
            {
                // At a segment's end, the next segment's start (as a pipe's positions are).
                var valueEnd = end < span.Length || next.GetObject() is null ? new SequencePosition(spanStart.GetObject(), spanStart.GetInteger() + end) : next;
                return Deliver(input, valueEnd, ref consumed, ref examined, out message);
            }
        }
    }

    /// <summary>
    /// Scans <paramref name="span"/>, which starts <see cref="_scanned"/> bytes into the frame at
    /// <paramref name="spanStart"/>, carrying the scanner's state in and out.
    /// </summary>
    /// <returns>The index just past the value's last byte, when the value ends in the span; else -1, with the whole span counted as scanned.</returns>
    private int ScanSpan(ReadOnlySpan<byte> span, SequencePosition spanStart)
    {
        var i = 0;
        while (i < span.Length)
        {
            int found;
            if (_inString)
            {
                if (_afterBackslash)
                {
                    _afterBackslash = false;
                    i++;
                    continue;
                }

                found = span[i..].IndexOfAny(StringBytes);
                if (found < 0)
                {
                    break;
                }

                i += found + 1;
                if (span[i - 1] == (byte)'\\')
                {
                    _afterBackslash = true;
                    continue;
                }

                _inString = false;
                if (_depth == 0)
                {
                    return Ended(i);
                }
            }
            else if (_depth > 0)
            {
                found = span[i..].IndexOfAny(ContainerBytes);
                if (found < 0)
                {
                    break;
                }

                i += found + 1;
                switch (span[i - 1])
                {
                    case (byte)'"':
                        _inString = true;
                        break;
                    case (byte)'{' or (byte)'[':
                        if (++_depth > MaximumDepth)
                        {
                            ThrowNesting(MaximumDepth, _scanned + i - 1);
                        }

                        break;
                    default:
                        if (--_depth == 0)
                        {
                            return Ended(i);
                        }

                        break;
                }
            }
            else if (_inScalar)
            {
                found = span[i..].IndexOfAnyExcept(ScalarBytes);
                return found < 0 ? Pending(span.Length) : Ended(i + found);
            }
            else
            {
                found = span[i..].IndexOfAnyExcept(Whitespace);
                if (found < 0)
                {
                    break;
                }

                i += found;
                StartValue(span[i], _scanned + i, new SequencePosition(spanStart.GetObject(), spanStart.GetInteger() + i));
                i++;
            }
        }

        return Pending(span.Length);
    }

    /// <summary>Begins a value at its first byte, or throws if that byte cannot begin one.</summary>
    private void StartValue(byte first, long offset, SequencePosition position)
    {
        switch (first)
        {
            case (byte)'{' or (byte)'[':
                _depth = 1;
                break;
            case (byte)'"':
                _inString = true;
                break;
            case (byte)'-' or (>= (byte)'0' and <= (byte)'9') or (byte)'t' or (byte)'f' or (byte)'n':
                _inScalar = true;
                break;
            default:
                ThrowUnexpected(first, offset);
                break;
        }

        _valueStart = offset;
        _valueStartPosition = position;
    }

    /// <summary>The value ends at <paramref name="end"/> in the current span: checks its length.</summary>
    private int Ended(int end)
    {
        var length = _scanned + end - _valueStart;
        if (length > MaximumValueLength)
        {
            ThrowFrameTooLarge(MaximumValueLength, length);
        }

        return end;
    }

    private int Pending(int spanLength)
    {
        _scanned += spanLength;
        return -1;
    }

    private bool Deliver(in ReadOnlySequence<byte> input, SequencePosition valueEnd, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        var value = input.Slice(_valueStartPosition, valueEnd);
        ResetScan();
        consumed = valueEnd;
        examined = valueEnd;
        message = DecodeValue(value);
        return true;
    }

    /// <summary>No value ends in <paramref name="input"/>: checks the limits and remembers where the scan stopped.</summary>
    private bool Stop(in ReadOnlySequence<byte> input, ref SequencePosition examined, out TMessage message)
    {
        ThrowIfPendingTooLong();
        examined = input.End;
        _stoppedAt = examined;
        message = default!;
        return false;
    }

    private void ThrowIfPendingTooLong()
    {
        var length = _valueStart < 0 ? _scanned : _scanned - _valueStart;
        if (length > MaximumValueLength)
        {
            ThrowFrameTooLarge(MaximumValueLength, length);
        }
    }

    /// <summary>
    /// Whether <paramref name="examined"/> is where the last call stopped, with as many bytes of
    /// <paramref name="input"/> before it as that call scanned: only then is the state this input's.
    /// </summary>
    private bool IsWhereScanStopped(in ReadOnlySequence<byte> input, SequencePosition examined)
    {
        var stopped = _stoppedAt.GetObject();
        if (stopped is null || !ReferenceEquals(examined.GetObject(), stopped) || examined.GetInteger() != _stoppedAt.GetInteger())
        {
            return false;
        }

        var start = input.Start;
        long offset;
        if (stopped is ReadOnlySequenceSegment<byte> stoppedSegment && start.GetObject() is ReadOnlySequenceSegment<byte> startSegment)
        {
            offset = stoppedSegment.RunningIndex + examined.GetInteger() - (startSegment.RunningIndex + start.GetInteger());
        }
        else if (ReferenceEquals(stopped, start.GetObject()))
        {
            offset = examined.GetInteger() - start.GetInteger();
        }
        else
        {
            return false;
        }

        return offset == _scanned && offset <= input.Length;
    }

    private static SequencePosition StartOfSecondSpan(in ReadOnlySequence<byte> input)
    {
        var next = input.Start;
        input.TryGet(ref next, out _);
        return next;
    }

    private void ResetScan()
    {
        _scanned = 0;
        _valueStart = -1;
        _valueStartPosition = default;
        _depth = 0;
        _inString = false;
        _afterBackslash = false;
        _inScalar = false;
        _stoppedAt = default;
    }

    [DoesNotReturn]
    private static void ThrowFrameTooLarge(int maximumLength, long length) => throw new FrameTooLargeException(maximumLength, length);

    [DoesNotReturn]
    private static void ThrowNesting(int maximumDepth, long offset) => throw new FrameNestingException(maximumDepth, offset);

    [DoesNotReturn]
    private static void ThrowUnexpected(byte value, long offset) => throw new UnexpectedByteException(value, offset, "whitespace or the start of a JSON value");
}
