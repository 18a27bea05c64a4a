using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>
/// Raised when the peer sends bytes that are not a QMP message: malformed JSON, or JSON that is
/// neither a well-formed greeting, command, reply nor event. A client session that reads it ends
/// with it; the simulator answers a refused well-formed request with an error reply instead.
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
        : this(reason, excerpt, id: null, innerException)
    {
    }

    /// <summary>Creates the error for a refused JSON object that has an <c>id</c> member.</summary>
    /// <param name="reason">What is wrong.</param>
    /// <param name="excerpt">A clipped excerpt of the offending bytes, as text.</param>
    /// <param name="id">The object's <c>id</c> member, or null; it is cloned, so it may be borrowed from a document about to be disposed.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public QmpParseException(string reason, string excerpt, JsonElement? id, Exception? innerException = null)
        : base($"{reason}: {excerpt}", innerException)
    {
        Reason = reason;
        Excerpt = excerpt;
        Id = id is { ValueKind: not JsonValueKind.Undefined } value ? value.Clone() : null;
    }

    /// <summary>What is wrong, without the excerpt.</summary>
    public string Reason { get; }

    /// <summary>A clipped excerpt of the offending bytes (at most <see cref="MaximumExcerptLength"/> characters, then "…").</summary>
    public string Excerpt { get; }

    /// <summary>
    /// The <c>id</c> member of the refused value, when it was a JSON object with an id (a copy
    /// that owns its data); otherwise null, as for malformed JSON or text that is not valid
    /// UTF-8 or holds an unpaired surrogate escape. A server answers a refused request with it.
    /// </summary>
    public JsonElement? Id { get; }

    /// <summary>
    /// Whether the refused value was well-formed JSON (JSON that is not an acceptable QMP
    /// message), as opposed to text that is not JSON at all.
    /// </summary>
    internal bool IsWellFormedJson { get; init; }

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
