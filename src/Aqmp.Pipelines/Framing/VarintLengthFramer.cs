using System.Buffers;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// A varint length-prefixed framer of raw bytes (protobuf's delimited streams), with no copy on
/// read; see <see cref="VarintLengthFramer{TMessage}"/> for the prefix, what is checked and the
/// limits.
/// </summary>
/// <remarks>
/// An inbound message is the payload, a slice of the pipe's memory, valid until the session's
/// <c>OnMessageAsync</c> for it completes: copy it (<c>ToArray()</c>) to keep it. An outbound
/// message is any <see cref="ReadOnlySequence{T}"/> the caller owns, of at most
/// <see cref="int.MaxValue"/> bytes; it is copied after its prefix as it is framed.
/// </remarks>
public sealed class VarintLengthFramer : VarintLengthFramer<ReadOnlySequence<byte>>
{
    /// <summary>Creates a varint length-prefixed framer of raw bytes.</summary>
    /// <param name="maximumPayloadLength">The longest accepted inbound payload in bytes, excluding its prefix; at least 0.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPayloadLength"/> is negative.</exception>
    public VarintLengthFramer(int maximumPayloadLength = DefaultMaximumPayloadLength)
        : base(maximumPayloadLength)
    {
    }

    /// <inheritdoc />
    protected override ReadOnlySequence<byte> DecodePayload(in ReadOnlySequence<byte> payload) => payload;

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The message is longer than <see cref="int.MaxValue"/> bytes.</exception>
    protected override int GetPayloadLength(ReadOnlySequence<byte> message) => SequencePayload.Length(message);

    /// <inheritdoc />
    protected override void EncodePayload(ReadOnlySequence<byte> message, Span<byte> destination) => message.CopyTo(destination);
}
