using System.Buffers;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// The default framer: LF-delimited lines (CRLF tolerated) as raw bytes, with no copy.
/// </summary>
/// <remarks>
/// An inbound message is a slice of the pipe's memory (terminator stripped), valid until the
/// session's <c>OnMessageAsync</c> for it completes: copy it (<c>ToArray()</c>) to keep it.
/// An outbound message is any <see cref="ReadOnlySequence{T}"/> the caller owns (for a byte
/// array: <c>new ReadOnlySequence&lt;byte&gt;(bytes)</c>); it is copied as it is framed, so it must
/// stay unchanged only until the call that sends it returns, and must not contain a line feed. Content that ends with a carriage
/// return loses it on the way back (it reads as the CR of a CRLF terminator).
/// </remarks>
public sealed class LineFramer : LineFramer<ReadOnlySequence<byte>>
{
    /// <summary>Creates a line framer.</summary>
    /// <param name="maximumLineLength">The longest accepted line in bytes, excluding its terminator; at least 1.</param>
    /// <param name="writeCrLf">Whether outbound lines end with CRLF instead of LF.</param>
    /// <param name="acceptUnterminatedLastLine">Whether an unterminated last line at end of stream is delivered instead of being an error.</param>
    public LineFramer(int maximumLineLength = DefaultMaximumLineLength, bool writeCrLf = false, bool acceptUnterminatedLastLine = false)
        : base(maximumLineLength, writeCrLf, acceptUnterminatedLastLine)
    {
    }

    /// <inheritdoc />
    protected override ReadOnlySequence<byte> DecodeLine(in ReadOnlySequence<byte> line) => line;

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The message contains a line feed.</exception>
    protected override void EncodeLine(ReadOnlySequence<byte> message, IBufferWriter<byte> output)
    {
        if (message.IsSingleSegment)
        {
            var span = message.FirstSpan;
            ThrowIfContainsLineFeed(span);
            output.Write(span);
            return;
        }

        foreach (var segment in message)
        {
            ThrowIfContainsLineFeed(segment.Span);
        }

        foreach (var segment in message)
        {
            output.Write(segment.Span);
        }
    }
}
