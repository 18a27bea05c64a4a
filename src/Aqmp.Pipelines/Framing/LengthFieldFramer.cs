using System.Buffers;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// A length-field framer of raw bytes, with no copy on read; see
/// <see cref="LengthFieldFramer{TMessage}"/> for the header's layout, the options, what is checked
/// and the limits.
/// </summary>
/// <remarks>
/// An inbound message is a slice of the pipe's memory (the frame without its first
/// <see cref="LengthFieldFramer{TMessage}.InitialBytesToStrip"/> bytes), valid until the session's
/// <c>OnMessageAsync</c> for it completes: copy it (<c>ToArray()</c>) to keep it. An outbound
/// message is any <see cref="ReadOnlySequence{T}"/> the caller owns, of at most
/// <see cref="int.MaxValue"/> bytes; it is copied after its length field as it is framed.
/// </remarks>
public sealed class LengthFieldFramer : LengthFieldFramer<ReadOnlySequence<byte>>
{
    /// <summary>Creates a length-field framer of raw bytes.</summary>
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
    public LengthFieldFramer(
        int lengthFieldLength = 4,
        int lengthFieldOffset = 0,
        int lengthAdjustment = 0,
        int? initialBytesToStrip = null,
        ByteOrder byteOrder = ByteOrder.BigEndian,
        int maximumFrameLength = DefaultMaximumFrameLength,
        bool writtenLengthIncludesLengthField = false,
        int writtenLengthAdjustment = 0)
        : base(lengthFieldLength, lengthFieldOffset, lengthAdjustment, initialBytesToStrip, byteOrder, maximumFrameLength, writtenLengthIncludesLengthField, writtenLengthAdjustment)
    {
    }

    /// <inheritdoc />
    protected override ReadOnlySequence<byte> DecodeFrame(in ReadOnlySequence<byte> frame) => frame;

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The message is longer than <see cref="int.MaxValue"/> bytes.</exception>
    protected override int GetPayloadLength(ReadOnlySequence<byte> message) => SequencePayload.Length(message);

    /// <inheritdoc />
    protected override void EncodePayload(ReadOnlySequence<byte> message, Span<byte> destination) => message.CopyTo(destination);
}
