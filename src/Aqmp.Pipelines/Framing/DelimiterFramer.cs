using System.Buffers;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// A delimiter framer of raw bytes, with no copy on read; see <see cref="DelimiterFramer{TMessage}"/>
/// for which delimiter ends a frame, the search and the limits.
/// </summary>
/// <remarks>
/// An inbound message is a slice of the pipe's memory (its delimiter stripped, unless
/// <see cref="DelimiterFramer{TMessage}.StripDelimiter"/> is off), valid until the session's
/// <c>OnMessageAsync</c> for it completes: copy it (<c>ToArray()</c>) to keep it. An outbound
/// message is any <see cref="ReadOnlySequence{T}"/> the caller owns; it is copied as it is framed,
/// then the first delimiter is written, and it must not hold a delimiter (see
/// <see cref="DelimiterFramer{TMessage}.ThrowIfContainsDelimiter"/>).
/// </remarks>
public sealed class DelimiterFramer : DelimiterFramer<ReadOnlySequence<byte>>
{
    /// <summary>Creates a framer of raw bytes with one delimiter.</summary>
    /// <param name="delimiter">The delimiter: any non-empty byte sequence (copied).</param>
    /// <param name="maximumPayloadLength">The longest accepted inbound frame in bytes, excluding its delimiter; at least 0.</param>
    /// <param name="stripDelimiter">Whether an inbound message leaves its delimiter out (the default) or ends with it.</param>
    /// <exception cref="ArgumentException">The delimiter is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPayloadLength"/> is negative.</exception>
    public DelimiterFramer(ReadOnlySpan<byte> delimiter, int maximumPayloadLength = DefaultMaximumPayloadLength, bool stripDelimiter = true)
        : base(delimiter, maximumPayloadLength, stripDelimiter)
    {
    }

    /// <summary>Creates a framer of raw bytes with several alternative delimiters.</summary>
    /// <param name="delimiters">
    /// The delimiters, each any non-empty byte sequence (copied), in order of preference between two
    /// that start at the same byte; the first is the one written after outbound messages.
    /// </param>
    /// <param name="maximumPayloadLength">The longest accepted inbound frame in bytes, excluding its delimiter; at least 0.</param>
    /// <param name="stripDelimiter">Whether an inbound message leaves its delimiter out (the default) or ends with it.</param>
    /// <exception cref="ArgumentException">There is no delimiter, or one is empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maximumPayloadLength"/> is negative.</exception>
    public DelimiterFramer(IEnumerable<byte[]> delimiters, int maximumPayloadLength = DefaultMaximumPayloadLength, bool stripDelimiter = true)
        : base(delimiters, maximumPayloadLength, stripDelimiter)
    {
    }

    /// <inheritdoc />
    protected override ReadOnlySequence<byte> DecodeFrame(in ReadOnlySequence<byte> frame) => frame;

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The message holds a delimiter, or ends with the start of one that the written delimiter completes; nothing is written.</exception>
    protected override void EncodeFrame(ReadOnlySequence<byte> message, IBufferWriter<byte> output)
    {
        ThrowIfContainsDelimiter(message);
        foreach (var segment in message)
        {
            output.Write(segment.Span);
        }
    }
}
