using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Base class of varint length-prefixed framers, the framing of protobuf's delimited streams
/// (<c>writeDelimitedTo</c> / <c>parseDelimitedFrom</c>): a frame is the payload's length as a
/// base-128 little-endian varint of 1 to 10 bytes (up to 64 bits), then the payload. Subclasses
/// turn the payload's bytes into a message and back.
/// </summary>
/// <typeparam name="TMessage">The message type of the protocol.</typeparam>
/// <remarks>
/// <para>
/// The prefix is read as soon as its bytes are buffered. A varint whose tenth byte still has its
/// continuation bit set, or whose tenth byte carries more than the 64th bit, raises
/// <see cref="FrameHeaderException"/>. A length over <see cref="MaximumPayloadLength"/> raises
/// <see cref="FrameTooLargeException"/> as soon as it is known (even from a prefix still
/// incomplete, whose value can only grow), so a session buffers no more of a frame than the limit,
/// the prefix and one read. Longer-than-needed encodings (say, <c>0x80 0x00</c> for 0) are accepted,
/// as protobuf accepts them. A frame wholly in the buffer's first segment is cut with positions made
/// from that segment; one that straddles segments takes a path kept out of line. Parsing allocates
/// nothing. The framer keeps no per-stream state: one instance may serve many sessions.
/// </para>
/// <para>
/// Outbound payloads are written after the shortest varint of their length. Bytes left over when
/// the stream ends raise <see cref="IncompleteFrameException"/> (the interface's default).
/// </para>
/// </remarks>
public abstract class VarintLengthFramer<TMessage> : IMessageFramer<TMessage>
{
    /// <summary>The default <see cref="MaximumPayloadLength"/>: 1 MiB.</summary>
    public const int DefaultMaximumPayloadLength = 1024 * 1024;

    /// <summary>The longest varint: 10 bytes carry 64 bits.</summary>
    public const int MaximumVarintLength = 10;

    private const byte ContinuationBit = 0x80;

    /// <summary>Creates a varint length-prefixed framer.</summary>
    /// <param name="maximumPayloadLength">The longest accepted inbound payload in bytes, excluding its prefix; at least 0.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPayloadLength"/> is negative.</exception>
    protected VarintLengthFramer(int maximumPayloadLength = DefaultMaximumPayloadLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maximumPayloadLength);
        MaximumPayloadLength = maximumPayloadLength;
    }

    /// <summary>The longest accepted inbound payload in bytes, excluding its prefix.</summary>
    public int MaximumPayloadLength { get; }

    /// <inheritdoc />
    /// <remarks>The payload limit plus the prefix that encodes it.</remarks>
    long? IMessageFramer<TMessage>.MaximumFrameLength => MaximumPayloadLength + (long)VarintLength((ulong)MaximumPayloadLength);

    /// <inheritdoc />
    /// <remarks>
    /// On success <paramref name="consumed"/> and <paramref name="examined"/> are just past the
    /// payload; otherwise <paramref name="examined"/> is the input's end. The payload passed to
    /// <see cref="DecodePayload"/> is a slice of <paramref name="input"/>.
    /// </remarks>
    /// <exception cref="FrameHeaderException">The varint is longer than 10 bytes or overflows 64 bits.</exception>
    /// <exception cref="FrameTooLargeException">The payload is longer than <see cref="MaximumPayloadLength"/>.</exception>
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        // Fast path: the whole frame is in the first segment (always so for a single-segment buffer)
        // behind a one or two-byte varint (a payload under 16 KiB), read inline. A longer varint,
        // one cut by the segment's end, or a payload past the segment takes one call out of line.
        var first = input.FirstSpan;
        var prefixLength = 0;
        var payloadLength = 0;
        if (!first.IsEmpty && first[0] < ContinuationBit)
        {
            prefixLength = 1;
            payloadLength = first[0];
        }
        else if (first.Length >= 2 && first[1] < ContinuationBit)
        {
            prefixLength = 2;
            payloadLength = (first[0] & ~ContinuationBit) | (first[1] << 7);
        }

        if (prefixLength > 0)
        {
            if (payloadLength > MaximumPayloadLength)
            {
                ThrowFrameTooLarge(MaximumPayloadLength, input.Length);
            }

            if (prefixLength + payloadLength <= first.Length)
            {
                // Positions are made from the segment's start, without seeking.
                var start = input.Start;
                var segment = start.GetObject();
                var startIndex = start.GetInteger();
                var end = new SequencePosition(segment, startIndex + prefixLength + payloadLength);
                consumed = end;
                examined = end;
                Deliver(input, new SequencePosition(segment, startIndex + prefixLength), end, out message);
                return true;
            }
        }

        return TryReadStraddlingFrame(input, prefixLength, payloadLength, ref consumed, ref examined, out message);
    }

    /// <summary>Writes the varint of <paramref name="message"/>'s payload length, then the payload, in one span of <paramref name="output"/>.</summary>
    /// <param name="message">The message to write.</param>
    /// <param name="output">The session's outbound buffer.</param>
    public void WriteMessage(TMessage message, IBufferWriter<byte> output)
    {
        var payloadLength = GetPayloadLength(message);
        var prefixLength = VarintLength((ulong)payloadLength);
        var span = output.GetSpan(checked(prefixLength + payloadLength));
        var value = (uint)payloadLength;
        for (var i = 0; i < prefixLength - 1; i++)
        {
            span[i] = (byte)(value | ContinuationBit);
            value >>= 7;
        }

        span[prefixLength - 1] = (byte)value;
        EncodePayload(message, span.Slice(prefixLength, payloadLength));
        output.Advance(prefixLength + payloadLength);
    }

    /// <summary>How many bytes the shortest varint of <paramref name="value"/> takes: 1 to 10.</summary>
    /// <param name="value">The value.</param>
    /// <returns>The varint's length.</returns>
    public static int VarintLength(ulong value) => Math.Max(1, (64 - System.Numerics.BitOperations.LeadingZeroCount(value) + 6) / 7);

    /// <summary>Turns one frame's payload (its prefix stripped) into a message.</summary>
    /// <param name="payload">
    /// The payload. It points into the pipe's memory: see <see cref="IMessageFramer{TMessage}"/> for
    /// how long it stays valid.
    /// </param>
    /// <returns>The message.</returns>
    /// <exception cref="ProtocolException">The payload is not a valid message.</exception>
    protected abstract TMessage DecodePayload(in ReadOnlySequence<byte> payload);

    /// <summary>How many bytes <see cref="EncodePayload"/> will write for <paramref name="message"/>.</summary>
    /// <param name="message">The message.</param>
    /// <returns>The payload's length in bytes; at least 0.</returns>
    protected abstract int GetPayloadLength(TMessage message);

    /// <summary>Writes <paramref name="message"/>'s payload, exactly <see cref="GetPayloadLength"/> bytes, into <paramref name="destination"/>.</summary>
    /// <param name="message">The message.</param>
    /// <param name="destination">A span of exactly the payload's length.</param>
    protected abstract void EncodePayload(TMessage message, Span<byte> destination);

    /// <summary>
    /// The slow path of <see cref="TryReadMessage"/>, kept out of line so that the fast path stays
    /// small: the payload does not fit the first segment (<paramref name="prefixLength"/> and
    /// <paramref name="payloadLength"/> read from it already), or the prefix was not read
    /// (<paramref name="prefixLength"/> is 0: it is read from the first segment, or, when it
    /// straddles segments, its bytes are copied out and read). Cuts the payload by offsets.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryReadStraddlingFrame(in ReadOnlySequence<byte> input, int prefixLength, int payloadLength, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        var buffered = input.Length;
        if (prefixLength == 0)
        {
            (prefixLength, payloadLength) = ReadPrefix(input.FirstSpan, buffered);
        }

        var prefixInFirstSegment = prefixLength > 0;
        if (!prefixInFirstSegment)
        {
            Span<byte> prefix = stackalloc byte[MaximumVarintLength];
            prefix = prefix[..(int)Math.Min(buffered, MaximumVarintLength)];
            input.Slice(0, prefix.Length).CopyTo(prefix);
            (prefixLength, payloadLength) = ReadPrefix(prefix, buffered);
        }

        if (prefixLength > 0 && prefixLength + (long)payloadLength <= buffered)
        {
            var end = input.GetPosition(prefixLength + (long)payloadLength);
            consumed = end;
            examined = end;
            var start = input.Start;
            var payloadStart = prefixInFirstSegment
                ? new SequencePosition(start.GetObject(), start.GetInteger() + prefixLength)
                : input.GetPosition(prefixLength);
            Deliver(input, payloadStart, end, out message);
            return true;
        }

        examined = input.End;
        message = default!;
        return false;
    }

    /// <summary>
    /// The message of the payload from <paramref name="start"/> to <paramref name="end"/> of
    /// <paramref name="input"/>: that slice itself for <see cref="VarintLengthFramer"/>, whose
    /// messages are payloads, cut straight into <paramref name="message"/> without a virtual call;
    /// otherwise what <see cref="DecodePayload"/> makes of it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Deliver(in ReadOnlySequence<byte> input, SequencePosition start, SequencePosition end, out TMessage message)
    {
        if (typeof(TMessage) == typeof(ReadOnlySequence<byte>) && this is VarintLengthFramer)
        {
            Unsafe.SkipInit(out message);
            Unsafe.As<TMessage, ReadOnlySequence<byte>>(ref message) = input.Slice(start, end);
        }
        else
        {
            message = DecodePayload(input.Slice(start, end));
        }
    }

    /// <summary>
    /// Reads the varint at the start of <paramref name="bytes"/>: its length and the payload's
    /// length; or (0, 0) when <paramref name="bytes"/> ends first.
    /// Throws when the varint is malformed or the length over the limit, even from an incomplete
    /// varint whose value so far is over it already.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private (int PrefixLength, int PayloadLength) ReadPrefix(ReadOnlySpan<byte> bytes, long buffered)
    {
        ulong value = 0;
        var count = Math.Min(bytes.Length, MaximumVarintLength);
        for (var i = 0; i < count; i++)
        {
            var b = bytes[i];
            if (i == MaximumVarintLength - 1 && b > 1)
            {
                ThrowHeader(b >= ContinuationBit
                    ? "the varint length runs past its longest form of 10 bytes"
                    : "the varint length overflows 64 bits");
            }

            value |= (ulong)(b & ~ContinuationBit) << (7 * i);
            if (value > (ulong)MaximumPayloadLength)
            {
                ThrowFrameTooLarge(MaximumPayloadLength, buffered);
            }

            if (b < ContinuationBit)
            {
                return (i + 1, (int)value);
            }
        }

        return (0, 0);
    }

    [DoesNotReturn]
    private static void ThrowHeader(string detail) => throw new FrameHeaderException(detail);

    [DoesNotReturn]
    private static void ThrowFrameTooLarge(long maximumLength, long observedLength) => throw new FrameTooLargeException(maximumLength, observedLength);
}
