using System.Buffers;
using System.Text.Json;
using Aqmp.Pipelines.Framing;

namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>
/// Frames QMP: one JSON object per line (QEMU ends lines with CRLF; this writes LF, which QEMU
/// accepts). Inbound lines are parsed straight from the pipe's bytes with
/// <see cref="Utf8JsonReader"/>; outbound messages are written straight into the pipe with
/// <see cref="Utf8JsonWriter"/>.
/// </summary>
public sealed class QmpFramer : LineFramer<QmpMessage>
{
    /// <summary>The default largest message: 10 MiB (QEMU's <c>query-qmp-schema</c> reply alone is about 200 KB).</summary>
    public const int DefaultMaximumMessageLength = 10 * 1024 * 1024;

    private const string QuitCommand = "quit";

    // A target for the cached writer between messages; nothing is ever written to it.
    private static readonly ArrayBufferWriter<byte> Detached = new(1);

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    /// <summary>Creates a QMP framer.</summary>
    /// <param name="maximumMessageLength">The longest accepted message in bytes; longer ones end the session with <see cref="FrameTooLargeException"/>.</param>
    public QmpFramer(int maximumMessageLength = DefaultMaximumMessageLength)
        : base(maximumMessageLength)
    {
    }

    /// <inheritdoc />
    /// <exception cref="QmpParseException">The line is not one QMP message.</exception>
    protected override QmpMessage DecodeLine(in ReadOnlySequence<byte> line) => QmpMessage.Parse(line);

    /// <inheritdoc />
    protected override void EncodeLine(QmpMessage message, IBufferWriter<byte> output) => Encode(message, output);

    /// <summary>
    /// Writes the message and its line feed, except after <c>quit</c>: QEMU reads its input a byte
    /// at a time and exits as soon as it has parsed the command's closing brace, and a byte it
    /// leaves unread makes its kernel reset the connection instead of closing it, after which ours
    /// may discard the replies and events QEMU sent before exiting (over TCP). QEMU parses JSON
    /// values without needing a separator; nothing is written after <c>quit</c>.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="output">The session's outbound buffer.</param>
    public override void WriteMessage(QmpMessage message, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.IsCommandNamed(QuitCommand))
        {
            Encode(message, output);
            return;
        }

        base.WriteMessage(message, output);
    }

    /// <summary>Writes a message as one line of compact JSON, without terminator, straight into <paramref name="output"/>.</summary>
    /// <param name="message">The message.</param>
    /// <param name="output">The outbound buffer.</param>
    internal static void Encode(QmpMessage message, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(message);
        var writer = t_writer;
        if (writer is null)
        {
            writer = t_writer = new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true });
        }
        else
        {
            writer.Reset(output);
        }

        message.WriteTo(writer);
        writer.Flush();

        // Let go of the session's pipe writer: the cached writer outlives the session.
        writer.Reset(Detached);
    }
}
