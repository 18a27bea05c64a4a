using System.Buffers;
using System.Text;

namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>
/// Raised when the peer sends bytes that are not a QMP message: malformed JSON, or JSON that is
/// neither a greeting, a command, a reply nor an event. The session that reads it ends with it.
/// </summary>
public class QmpParseException : ProtocolException
{
    /// <summary>The longest excerpt of the offending bytes quoted in the message.</summary>
    public const int MaximumExcerptLength = 120;

    /// <summary>Creates the error.</summary>
    /// <param name="reason">What is wrong.</param>
    /// <param name="excerpt">A clipped excerpt of the offending bytes, as text.</param>
    /// <param name="innerException">The JSON parser's error, if any.</param>
    public QmpParseException(string reason, string excerpt, Exception? innerException = null)
        : base($"{reason}: {excerpt}", innerException)
    {
        Reason = reason;
        Excerpt = excerpt;
    }

    /// <summary>What is wrong, without the excerpt.</summary>
    public string Reason { get; }

    /// <summary>A clipped excerpt of the offending bytes (at most <see cref="MaximumExcerptLength"/> characters, then "…").</summary>
    public string Excerpt { get; }

    /// <summary>Clips <paramref name="bytes"/> to an excerpt fit for an error message (invalid UTF-8 shown as U+FFFD).</summary>
    /// <param name="bytes">The offending bytes.</param>
    /// <returns>The excerpt, quoted.</returns>
    public static string Clip(in ReadOnlySequence<byte> bytes)
    {
        var head = bytes.Length > MaximumExcerptLength ? bytes.Slice(0, MaximumExcerptLength) : bytes;
        var text = Encoding.UTF8.GetString(head);
        return Quote(text, clipped: bytes.Length > MaximumExcerptLength);
    }

    /// <summary>Clips <paramref name="bytes"/> to an excerpt fit for an error message (invalid UTF-8 shown as U+FFFD).</summary>
    /// <param name="bytes">The offending bytes.</param>
    /// <returns>The excerpt, quoted.</returns>
    public static string Clip(ReadOnlySpan<byte> bytes)
        => Quote(Encoding.UTF8.GetString(bytes.Length > MaximumExcerptLength ? bytes[..MaximumExcerptLength] : bytes), clipped: bytes.Length > MaximumExcerptLength);

    /// <summary>Clips <paramref name="text"/> to an excerpt fit for an error message.</summary>
    /// <param name="text">The offending text.</param>
    /// <returns>The excerpt, quoted.</returns>
    public static string Clip(string text)
        => text.Length > MaximumExcerptLength ? Quote(text[..MaximumExcerptLength], clipped: true) : Quote(text, clipped: false);

    private static string Quote(string text, bool clipped) => $"'{text}'{(clipped ? "…" : string.Empty)}";
}
