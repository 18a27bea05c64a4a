using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Base class of length-field framers: a frame starts with a header holding its length in a 1, 2,
/// 3, 4 or 8-byte unsigned field, big or little endian, at any offset (the option set of DotNetty's
/// <c>LengthFieldBasedFrameDecoder</c> and <c>LengthFieldPrepender</c>). Subclasses turn the
/// frame's bytes into a message and back.
/// </summary>
/// <typeparam name="TMessage">The message type of the protocol.</typeparam>
/// <remarks>
/// <para>
/// <b>Reading.</b> The frame is <c>lengthFieldOffset + lengthFieldLength + value + lengthAdjustment</c>
/// bytes long, where <c>value</c> is the length field's value; the message is the frame without
/// its first <c>initialBytesToStrip</c> bytes. The header is read as soon as it is buffered: a
/// length that is negative (an 8-byte field is signed), that makes a frame shorter than its header
/// once adjusted, or that leaves fewer bytes than <c>initialBytesToStrip</c> raises
/// <see cref="FrameHeaderException"/>; a frame over <see cref="MaximumFrameLength"/> raises
/// <see cref="FrameTooLargeException"/>, so a session buffers no more of a frame than the limit plus
/// one read. A frame wholly in the buffer's first segment is cut with positions made from that
/// segment; one that straddles segments takes a path kept out of line. Parsing allocates nothing.
/// The framer keeps no per-stream state: one instance may serve many sessions.
/// </para>
/// <para>
/// <b>Writing.</b> <see cref="WriteMessage"/> writes a length field of the same size and byte order
/// followed by the payload, as <c>LengthFieldPrepender</c> does: it writes no bytes before the
/// field, whatever <c>lengthFieldOffset</c> is. The field holds the payload's length, plus
/// <c>lengthFieldLength</c> when <see cref="WrittenLengthIncludesLengthField"/> is set, plus
/// <see cref="WrittenLengthAdjustment"/>. Outbound frames are not checked against the maximum.
/// </para>
/// <para>
/// Bytes left over when the stream ends raise <see cref="IncompleteFrameException"/> (the
/// interface's default).
/// </para>
/// </remarks>
public abstract class LengthFieldFramer<TMessage> : IMessageFramer<TMessage>
{
    /// <summary>The default <see cref="MaximumFrameLength"/>: 1 MiB.</summary>
    public const int DefaultMaximumFrameLength = 1024 * 1024;

    /// <summary>What <see cref="TryReadStraddlingFrame"/> is passed when the frame's length is not read yet.</summary>
    private const long UnknownLength = -1;

    private readonly int _headerLength;
    private readonly bool _bigEndian;

    // Decided once here, so that a frame's fast path costs one load, one byte-order branch and
    // one range check: how the field is read (a 4-byte big-endian field, the commonest, as such;
    // any other with an 8-byte load, shifted or masked, when the first segment holds _wideReadEnd
    // bytes; otherwise by _fieldKind), which field values make a valid frame (those in
    // [_smallestValidValue, _smallestValidValue + _validValueCount), compared as one unsigned
    // subtraction), whose length is the value plus _frameLengthOverValue.
    private readonly FieldKind _fieldKind;
    private readonly int _wideReadEnd;
    private readonly nint _fieldOffset;
    private readonly bool _fourBytesBigEndian;
    private readonly int _bigEndianShift;
    private readonly ulong _littleEndianMask;
    private readonly ulong _smallestValidValue;
    private readonly ulong _validValueCount;
    private readonly long _frameLengthOverValue;

    /// <summary>Creates a length-field framer.</summary>
    /// <param name="lengthFieldLength">The length field's size in bytes: 1, 2, 3, 4 or 8.</param>
    /// <param name="lengthFieldOffset">How many bytes of the frame come before the length field; at least 0.</param>
    /// <param name="lengthAdjustment">Added to the field's value to give the length of what follows the field (say, minus the header's length when the field counts the header too).</param>
    /// <param name="initialBytesToStrip">
    /// How many bytes at the frame's start are left out of the message; <see langword="null"/> (the
    /// default) for the whole header, <c>lengthFieldOffset + lengthFieldLength</c>, 0 to keep it.
    /// </param>
    /// <param name="byteOrder">The length field's byte order, on read and on write.</param>
    /// <param name="maximumFrameLength">The longest accepted inbound frame in bytes, header included; at least the header's length.</param>
    /// <param name="writtenLengthIncludesLengthField">Whether an outbound length field counts its own bytes too.</param>
    /// <param name="writtenLengthAdjustment">Added to an outbound length field's value.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its range.</exception>
    protected LengthFieldFramer(
        int lengthFieldLength = 4,
        int lengthFieldOffset = 0,
        int lengthAdjustment = 0,
        int? initialBytesToStrip = null,
        ByteOrder byteOrder = ByteOrder.BigEndian,
        int maximumFrameLength = DefaultMaximumFrameLength,
        bool writtenLengthIncludesLengthField = false,
        int writtenLengthAdjustment = 0)
    {
        if (lengthFieldLength is not (1 or 2 or 3 or 4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(lengthFieldLength), lengthFieldLength, "The length field is 1, 2, 3, 4 or 8 bytes long.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(lengthFieldOffset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lengthFieldOffset, int.MaxValue - lengthFieldLength);
        if (!Enum.IsDefined(byteOrder))
        {
            throw new ArgumentOutOfRangeException(nameof(byteOrder), byteOrder, "Not a byte order.");
        }

        _headerLength = lengthFieldOffset + lengthFieldLength;
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumFrameLength, _headerLength);
        ArgumentOutOfRangeException.ThrowIfNegative(initialBytesToStrip ?? 0, nameof(initialBytesToStrip));
        LengthFieldLength = lengthFieldLength;
        LengthFieldOffset = lengthFieldOffset;
        LengthAdjustment = lengthAdjustment;
        InitialBytesToStrip = initialBytesToStrip ?? _headerLength;
        ByteOrder = byteOrder;
        MaximumFrameLength = maximumFrameLength;
        WrittenLengthIncludesLengthField = writtenLengthIncludesLengthField;
        WrittenLengthAdjustment = writtenLengthAdjustment;
        _bigEndian = byteOrder == ByteOrder.BigEndian;
        _fieldKind = KindOf(lengthFieldLength, _bigEndian);
        _bigEndianShift = 64 - (8 * lengthFieldLength);
        _littleEndianMask = ulong.MaxValue >> _bigEndianShift;
        _fieldOffset = lengthFieldOffset;
        _fourBytesBigEndian = _fieldKind == FieldKind.FourBigEndian;
        _wideReadEnd = lengthFieldOffset > int.MaxValue - sizeof(ulong) ? int.MaxValue : lengthFieldOffset + sizeof(ulong);

        // A frame is valid when max(header, bytes to strip) <= value + adjustment + header <= maximum.
        _frameLengthOverValue = (long)lengthAdjustment + _headerLength;
        var smallestValue = Math.Max(0, Math.Max(_headerLength, InitialBytesToStrip) - _frameLengthOverValue);
        var largestValue = maximumFrameLength - _frameLengthOverValue;
        _smallestValidValue = (ulong)smallestValue;
        _validValueCount = largestValue < smallestValue ? 0 : (ulong)(largestValue - smallestValue + 1);
    }

    /// <summary>How the length field is read: its size and byte order in one value, for one switch per frame.</summary>
    private enum FieldKind
    {
        One,
        TwoBigEndian,
        TwoLittleEndian,
        ThreeBigEndian,
        ThreeLittleEndian,
        FourBigEndian,
        FourLittleEndian,
        EightBigEndian,
        EightLittleEndian,
    }

    /// <summary>The length field's size in bytes: 1, 2, 3, 4 or 8.</summary>
    public int LengthFieldLength { get; }

    /// <summary>How many bytes of an inbound frame come before the length field.</summary>
    public int LengthFieldOffset { get; }

    /// <summary>Added to an inbound length field's value to give the length of what follows the field.</summary>
    public int LengthAdjustment { get; }

    /// <summary>How many bytes at an inbound frame's start are left out of its message.</summary>
    public int InitialBytesToStrip { get; }

    /// <summary>The length field's byte order, on read and on write.</summary>
    public ByteOrder ByteOrder { get; }

    /// <summary>The longest accepted inbound frame in bytes, header included.</summary>
    public int MaximumFrameLength { get; }

    /// <summary>Whether an outbound length field counts its own bytes too.</summary>
    public bool WrittenLengthIncludesLengthField { get; }

    /// <summary>Added to an outbound length field's value.</summary>
    public int WrittenLengthAdjustment { get; }

    /// <inheritdoc />
    long? IMessageFramer<TMessage>.MaximumFrameLength => MaximumFrameLength;

    /// <inheritdoc />
    /// <remarks>
    /// On success <paramref name="consumed"/> and <paramref name="examined"/> are just past the
    /// frame; otherwise <paramref name="examined"/> is the input's end. The message passed to
    /// <see cref="DecodeFrame"/> is a slice of <paramref name="input"/>.
    /// </remarks>
    /// <exception cref="FrameHeaderException">The length field holds a negative length, or one that makes the frame shorter than its header or than the bytes to strip.</exception>
    /// <exception cref="FrameTooLargeException">The frame is longer than <see cref="MaximumFrameLength"/>.</exception>
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        // Fast path: 8 bytes in the first segment from the field on (all but the shortest frames):
        // a 4-byte big-endian field is one 4-byte load, any other one 8-byte load shifted or masked
        // down to its size, and one range check decides whether its value is valid. Everything else (a
        // frame past the first segment, too few bytes to load at once, an invalid value, which
        // the slow path reads again to say what is wrong with it) takes one call out of line.
        var first = input.FirstSpan;
        if (first.Length >= _wideReadEnd)
        {
            ref var field = ref Unsafe.Add(ref MemoryMarshal.GetReference(first), _fieldOffset);
            var value = _fourBytesBigEndian ? ReadFourBytesBigEndian(ref field)
                : _bigEndian ? ReadBigEndian(ref field) >> _bigEndianShift
                : ReadLittleEndian(ref field) & _littleEndianMask;
            if (value - _smallestValidValue < _validValueCount)
            {
                if ((long)value <= first.Length - _frameLengthOverValue)
                {
                    // The whole frame is in the first segment: positions are made from the segment's
                    // start, without seeking. The end's index adds the value last (the frame's length
                    // wraps around int as the index does: their sum fits), so that the next frame waits
                    // on one addition after the field's load.
                    var start = input.Start;
                    var segment = start.GetObject();
                    var startIndex = start.GetInteger();
                    var end = new SequencePosition(segment, startIndex + (int)_frameLengthOverValue + (int)value);
                    consumed = end;
                    examined = end;
                    Deliver(input, new SequencePosition(segment, startIndex + InitialBytesToStrip), end, out message);
                    return true;
                }

                return TryReadStraddlingFrame(input, (long)value + _frameLengthOverValue, ref consumed, ref examined, out message);
            }
        }

        return TryReadStraddlingFrame(input, UnknownLength, ref consumed, ref examined, out message);
    }

    /// <summary>
    /// Writes <paramref name="message"/>'s payload after a length field holding its length (see
    /// the class remarks for the value), in one span of <paramref name="output"/>.
    /// </summary>
    /// <param name="message">The message to write.</param>
    /// <param name="output">The session's outbound buffer.</param>
    /// <exception cref="ArgumentException">The length to write is negative or does not fit the length field; nothing is written.</exception>
    public void WriteMessage(TMessage message, IBufferWriter<byte> output)
    {
        var payloadLength = GetPayloadLength(message);
        var value = payloadLength + (WrittenLengthIncludesLengthField ? (long)LengthFieldLength : 0) + WrittenLengthAdjustment;
        if (value < 0 || (ulong)value > LargestFieldValue(LengthFieldLength))
        {
            throw new ArgumentException($"A {payloadLength}-byte payload makes a length of {value}, which a {LengthFieldLength}-byte length field cannot hold.", nameof(message));
        }

        var span = output.GetSpan(checked(LengthFieldLength + payloadLength));
        WriteLengthField(span[..LengthFieldLength], (ulong)value);
        EncodePayload(message, span.Slice(LengthFieldLength, payloadLength));
        output.Advance(LengthFieldLength + payloadLength);
    }

    /// <summary>Turns one frame's message bytes (the frame without its stripped bytes) into a message.</summary>
    /// <param name="frame">
    /// The bytes. They point into the pipe's memory: see <see cref="IMessageFramer{TMessage}"/> for
    /// how long they stay valid.
    /// </param>
    /// <returns>The message.</returns>
    /// <exception cref="ProtocolException">The bytes are not a valid message.</exception>
    protected abstract TMessage DecodeFrame(in ReadOnlySequence<byte> frame);

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
    /// small: the frame does not fit the first segment (<paramref name="frameLength"/>, valid, read
    /// from it already), or its length is not known yet (<see cref="UnknownLength"/>: the first
    /// segment holds too few bytes to read the field at once, or the field is invalid): the field,
    /// which may straddle segments, is copied out and checked. Cuts the frame by offsets.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryReadStraddlingFrame(in ReadOnlySequence<byte> input, long frameLength, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message)
    {
        var buffered = input.Length;
        // A length read on the fast path came from a first segment of at least _wideReadEnd bytes.
        var firstSegmentHolds = frameLength == UnknownLength ? 0 : _wideReadEnd;
        if (frameLength == UnknownLength && buffered >= _headerLength)
        {
            Span<byte> field = stackalloc byte[8];
            input.Slice(LengthFieldOffset, LengthFieldLength).CopyTo(field);
            frameLength = FrameLength(ReadLengthField(field), buffered);
        }

        if (frameLength != UnknownLength && frameLength <= buffered)
        {
            var end = input.GetPosition(frameLength);
            consumed = end;
            examined = end;
            var start = input.Start;
            var payloadStart = InitialBytesToStrip <= firstSegmentHolds
                ? new SequencePosition(start.GetObject(), start.GetInteger() + InitialBytesToStrip)
                : input.GetPosition(InitialBytesToStrip);
            Deliver(input, payloadStart, end, out message);
            return true;
        }

        examined = input.End;
        message = default!;
        return false;
    }

    /// <summary>
    /// The message of the frame's bytes from <paramref name="start"/> to <paramref name="end"/> of
    /// <paramref name="input"/>: that slice itself for <see cref="LengthFieldFramer"/>, whose
    /// messages are frames, cut straight into <paramref name="message"/> without a virtual call;
    /// otherwise what <see cref="DecodeFrame"/> makes of it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Deliver(in ReadOnlySequence<byte> input, SequencePosition start, SequencePosition end, out TMessage message)
    {
        if (typeof(TMessage) == typeof(ReadOnlySequence<byte>) && this is LengthFieldFramer)
        {
            Unsafe.SkipInit(out message);
            Unsafe.As<TMessage, ReadOnlySequence<byte>>(ref message) = input.Slice(start, end);
        }
        else
        {
            message = DecodeFrame(input.Slice(start, end));
        }
    }

    /// <summary>The frame's length, header included, from its length field's value; throws when that is not a valid length within the limit.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private long FrameLength(ulong fieldValue, long buffered)
    {
        if (fieldValue > long.MaxValue)
        {
            ThrowHeader($"the length field holds a negative length ({(long)fieldValue})");
        }

        // A value this large is over any limit; clamping it keeps the sum from overflowing.
        var frameLength = (long)Math.Min(fieldValue, long.MaxValue / 2) + LengthAdjustment + _headerLength;
        if (frameLength < _headerLength)
        {
            ThrowHeader($"the length field holds {fieldValue}, which with the adjustment of {LengthAdjustment} makes a frame of {frameLength} bytes, shorter than its {_headerLength}-byte header");
        }

        if (frameLength > MaximumFrameLength)
        {
            ThrowFrameTooLarge(MaximumFrameLength, Math.Min(buffered, frameLength));
        }

        if (frameLength < InitialBytesToStrip)
        {
            ThrowHeader($"the frame is {frameLength} bytes long, fewer than the {InitialBytesToStrip} bytes to strip");
        }

        return frameLength;
    }

    /// <summary>The 4 bytes at <paramref name="source"/> as a big-endian value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadFourBytesBigEndian(ref byte source)
        => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ref source)) : Unsafe.ReadUnaligned<uint>(ref source);

    /// <summary>The 8 bytes at <paramref name="source"/> as a big-endian value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadBigEndian(ref byte source)
        => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(ref source)) : Unsafe.ReadUnaligned<ulong>(ref source);

    /// <summary>The 8 bytes at <paramref name="source"/> as a little-endian value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadLittleEndian(ref byte source)
        => BitConverter.IsLittleEndian ? Unsafe.ReadUnaligned<ulong>(ref source) : BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(ref source));

    /// <summary>The length field's value, read from the start of <paramref name="field"/> (at least the field's length).</summary>
    private ulong ReadLengthField(ReadOnlySpan<byte> field) => _fieldKind switch
    {
        FieldKind.One => field[0],
        FieldKind.TwoBigEndian => BinaryPrimitives.ReadUInt16BigEndian(field),
        FieldKind.TwoLittleEndian => BinaryPrimitives.ReadUInt16LittleEndian(field),
        FieldKind.ThreeBigEndian => (ulong)((field[0] << 16) | (field[1] << 8) | field[2]),
        FieldKind.ThreeLittleEndian => (ulong)((field[2] << 16) | (field[1] << 8) | field[0]),
        FieldKind.FourBigEndian => BinaryPrimitives.ReadUInt32BigEndian(field),
        FieldKind.FourLittleEndian => BinaryPrimitives.ReadUInt32LittleEndian(field),
        FieldKind.EightBigEndian => BinaryPrimitives.ReadUInt64BigEndian(field),
        _ => BinaryPrimitives.ReadUInt64LittleEndian(field),
    };

    private static FieldKind KindOf(int lengthFieldLength, bool bigEndian) => lengthFieldLength switch
    {
        1 => FieldKind.One,
        2 => bigEndian ? FieldKind.TwoBigEndian : FieldKind.TwoLittleEndian,
        3 => bigEndian ? FieldKind.ThreeBigEndian : FieldKind.ThreeLittleEndian,
        4 => bigEndian ? FieldKind.FourBigEndian : FieldKind.FourLittleEndian,
        _ => bigEndian ? FieldKind.EightBigEndian : FieldKind.EightLittleEndian,
    };

    private void WriteLengthField(Span<byte> field, ulong value)
    {
        // Written as the low bytes of a 64-bit value in the chosen order.
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        var low = bytes[(8 - field.Length)..];
        low.CopyTo(field);
        if (!_bigEndian)
        {
            field.Reverse();
        }
    }

    /// <summary>The largest value a length field of <paramref name="length"/> bytes holds: an 8-byte field is signed.</summary>
    private static ulong LargestFieldValue(int length) => length == 8 ? long.MaxValue : (1UL << (8 * length)) - 1;

    [DoesNotReturn]
    private static void ThrowHeader(string detail) => throw new FrameHeaderException(detail);

    [DoesNotReturn]
    private static void ThrowFrameTooLarge(long maximumLength, long observedLength) => throw new FrameTooLargeException(maximumLength, observedLength);
}
