using System.Buffers;
using System.Text;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// LF-delimited lines (CRLF tolerated) as strict UTF-8 <see cref="string"/> messages.
/// </summary>
/// <remarks>
/// Each inbound line allocates its string (the message owns its data, so it may be kept).
/// Invalid UTF-8 raises a <see cref="ProtocolException"/> rather than being replaced silently.
/// </remarks>
public sealed class Utf8LineFramer : LineFramer<string>
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // Up to this many chars, a line is encoded into one worst-case-sized span (3 bytes a char).
    private const int DirectEncodeLimit = 16 * 1024;

    /// <summary>Creates a UTF-8 line framer.</summary>
    /// <param name="maximumLineLength">The longest accepted line in bytes, excluding its terminator; at least 1.</param>
    /// <param name="writeCrLf">Whether outbound lines end with CRLF instead of LF.</param>
    /// <param name="acceptUnterminatedLastLine">Whether an unterminated last line at end of stream is delivered instead of being an error.</param>
    public Utf8LineFramer(int maximumLineLength = DefaultMaximumLineLength, bool writeCrLf = false, bool acceptUnterminatedLastLine = false)
        : base(maximumLineLength, writeCrLf, acceptUnterminatedLastLine)
    {
    }

    /// <inheritdoc />
    /// <exception cref="ProtocolException">The line is not valid UTF-8.</exception>
    protected override string DecodeLine(in ReadOnlySequence<byte> line)
    {
        try
        {
            if (line.IsSingleSegment)
            {
                return StrictUtf8.GetString(line.FirstSpan);
            }

            // A line straddling segments: one pooled copy, then one decode.
            var length = checked((int)line.Length);
            var rented = ArrayPool<byte>.Shared.Rent(length);
            try
            {
                line.CopyTo(rented);
                return StrictUtf8.GetString(rented, 0, length);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
        catch (DecoderFallbackException ex)
        {
            throw new ProtocolException("Inbound line is not valid UTF-8.", ex);
        }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">The message contains a line feed, or an unpaired surrogate.</exception>
    protected override void EncodeLine(string message, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArgumentException("An outbound line must not contain a line feed.", nameof(message));
        }

        if (message.Length <= DirectEncodeLimit)
        {
            // Encode straight into the output at its worst-case size: one pass over the text.
            var span = output.GetSpan(StrictUtf8.GetMaxByteCount(message.Length));
            output.Advance(StrictUtf8.GetBytes(message, span));
            return;
        }

        StrictUtf8.GetBytes(message, output);
    }
}
