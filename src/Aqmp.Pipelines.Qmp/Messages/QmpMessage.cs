using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;

namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>
/// One QMP message: a JSON object classified as a greeting, command, reply or event. Parsed
/// messages own their data (they stay valid after the pipe's memory is recycled).
/// </summary>
public sealed class QmpMessage
{
    private const string GreetingMember = "QMP";
    private const string ExecuteMember = "execute";
    private const string ExecuteOutOfBandMember = "exec-oob";
    private const string ArgumentsMember = "arguments";
    private const string ReturnMember = "return";
    private const string ErrorMember = "error";
    private const string EventMember = "event";
    private const string DataMember = "data";
    private const string TimestampMember = "timestamp";
    private const string IdMember = "id";

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 128 };

    private QmpMessage(QmpMessageKind kind, JsonElement root)
    {
        Kind = kind;
        Root = root;
    }

    /// <summary>What the message is.</summary>
    public QmpMessageKind Kind { get; }

    /// <summary>The whole message, a JSON object.</summary>
    public JsonElement Root { get; }

    /// <summary>The <c>id</c> member of a command or reply, when present.</summary>
    public JsonElement? Id => Member(IdMember);

    /// <summary>For a command, its name (<c>execute</c> or <c>exec-oob</c> member); otherwise null.</summary>
    public string? CommandName => Kind == QmpMessageKind.Command ? (Member(ExecuteMember) ?? Member(ExecuteOutOfBandMember))?.GetString() : null;

    /// <summary>For a command, whether it is out-of-band (<c>exec-oob</c>).</summary>
    public bool IsOutOfBand => Kind == QmpMessageKind.Command && Root.TryGetProperty(ExecuteOutOfBandMember, out _);

    /// <summary>For a command, its <c>arguments</c> member, when present.</summary>
    public JsonElement? Arguments => Kind == QmpMessageKind.Command ? Member(ArgumentsMember) : null;

    /// <summary>For a successful reply, its <c>return</c> value; otherwise null.</summary>
    public JsonElement? ReturnValue => Kind == QmpMessageKind.Return ? Member(ReturnMember) : null;

    /// <summary>For an error reply, the error's <c>class</c>; otherwise null.</summary>
    public string? ErrorClass => Kind == QmpMessageKind.Error ? Root.GetProperty(ErrorMember).GetProperty("class").GetString() : null;

    /// <summary>For an error reply, the error's <c>desc</c>; otherwise null.</summary>
    public string? ErrorDescription => Kind == QmpMessageKind.Error ? Root.GetProperty(ErrorMember).GetProperty("desc").GetString() : null;

    /// <summary>For an event, its name; otherwise null.</summary>
    public string? EventName => Kind == QmpMessageKind.Event ? Root.GetProperty(EventMember).GetString() : null;

    /// <summary>
    /// Parses one message from UTF-8 JSON, straight from the bytes (no intermediate string).
    /// </summary>
    /// <param name="utf8">One JSON object.</param>
    /// <returns>The message.</returns>
    /// <exception cref="QmpParseException">The bytes are not one JSON object, or the object is not a QMP message.</exception>
    public static QmpMessage Parse(in ReadOnlySequence<byte> utf8)
    {
        JsonElement root;
        try
        {
            var reader = new Utf8JsonReader(utf8, ReaderOptions);
            root = JsonElement.ParseValue(ref reader);

            // Past the value there may be only whitespace: the reader throws on anything else.
            reader.Read();
        }
        catch (JsonException ex)
        {
            throw new QmpParseException($"Malformed JSON ({ex.Message})", QmpParseException.Clip(utf8), ex);
        }

        // The reader checks UTF-8 only where text is turned into strings: check it all here, on the
        // parsed copy, so that no later accessor can fail on a message that was accepted.
        if (!Utf8.IsValid(JsonMarshal.GetRawUtf8Value(root)))
        {
            throw new QmpParseException("Invalid UTF-8 in JSON text", QmpParseException.Clip(utf8));
        }

        return FromJson(root);
    }

    /// <summary>Parses one message from UTF-8 JSON.</summary>
    /// <param name="utf8">One JSON object.</param>
    /// <returns>The message.</returns>
    /// <exception cref="QmpParseException">The bytes are not a QMP message.</exception>
    public static QmpMessage Parse(ReadOnlySpan<byte> utf8) => Parse(new ReadOnlySequence<byte>(utf8.ToArray()));

    /// <summary>Parses one message from JSON text.</summary>
    /// <param name="json">One JSON object.</param>
    /// <returns>The message.</returns>
    /// <exception cref="QmpParseException">The text is not a QMP message.</exception>
    public static QmpMessage Parse(string json) => Parse(new ReadOnlySequence<byte>(System.Text.Encoding.UTF8.GetBytes(json)));

    /// <summary>Classifies a JSON value as a QMP message.</summary>
    /// <param name="root">The JSON value; it must own its data (not borrowed from a disposed document).</param>
    /// <returns>The message.</returns>
    /// <exception cref="QmpParseException">The value is not a QMP message.</exception>
    public static QmpMessage FromJson(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw NotQmp(root, "A QMP message must be a JSON object");
        }

        if (root.TryGetProperty(GreetingMember, out var greeting))
        {
            if (greeting.ValueKind != JsonValueKind.Object
                || !greeting.TryGetProperty("version", out var version) || version.ValueKind != JsonValueKind.Object
                || !greeting.TryGetProperty("capabilities", out var capabilities) || capabilities.ValueKind != JsonValueKind.Array)
            {
                throw NotQmp(root, "Malformed QMP greeting");
            }

            return new QmpMessage(QmpMessageKind.Greeting, root);
        }

        if (IsString(root, ExecuteMember) || IsString(root, ExecuteOutOfBandMember))
        {
            if (root.TryGetProperty(ArgumentsMember, out var arguments) && arguments.ValueKind != JsonValueKind.Object)
            {
                throw NotQmp(root, "QMP command arguments must be a JSON object");
            }

            return new QmpMessage(QmpMessageKind.Command, root);
        }

        if (root.TryGetProperty(ReturnMember, out _))
        {
            return new QmpMessage(QmpMessageKind.Return, root);
        }

        if (root.TryGetProperty(ErrorMember, out var error))
        {
            if (error.ValueKind != JsonValueKind.Object || !IsString(error, "class") || !IsString(error, "desc"))
            {
                throw NotQmp(root, "Malformed QMP error reply");
            }

            return new QmpMessage(QmpMessageKind.Error, root);
        }

        if (IsString(root, EventMember))
        {
            return new QmpMessage(QmpMessageKind.Event, root);
        }

        throw NotQmp(root, "JSON object is neither a QMP greeting, command, reply nor event");
    }

    /// <summary>Builds a command.</summary>
    /// <param name="name">The command name, e.g. <c>query-status</c>.</param>
    /// <param name="arguments">Its arguments, a JSON object, or null.</param>
    /// <param name="id">Its id, or null.</param>
    /// <param name="outOfBand">Whether to send it as <c>exec-oob</c>.</param>
    /// <returns>The message.</returns>
    public static QmpMessage Command(string name, JsonElement? arguments = null, JsonElement? id = null, bool outOfBand = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (arguments is { ValueKind: not JsonValueKind.Object and not JsonValueKind.Undefined and not JsonValueKind.Null })
        {
            throw new ArgumentException("QMP command arguments must be a JSON object.", nameof(arguments));
        }

        return Build(QmpMessageKind.Command, writer =>
        {
            writer.WriteString(outOfBand ? ExecuteOutOfBandMember : ExecuteMember, name);
            if (arguments is { ValueKind: JsonValueKind.Object } args)
            {
                writer.WritePropertyName(ArgumentsMember);
                args.WriteTo(writer);
            }

            WriteId(writer, id);
        });
    }

    /// <summary>Builds a successful reply.</summary>
    /// <param name="value">The <c>return</c> value (an empty object when null, as QEMU does for commands without a result).</param>
    /// <param name="id">The id of the command answered, or null.</param>
    /// <returns>The message.</returns>
    public static QmpMessage Return(JsonElement? value, JsonElement? id) => Build(QmpMessageKind.Return, writer =>
    {
        writer.WritePropertyName(ReturnMember);
        if (value is { ValueKind: not JsonValueKind.Undefined } v)
        {
            v.WriteTo(writer);
        }
        else
        {
            writer.WriteStartObject();
            writer.WriteEndObject();
        }

        WriteId(writer, id);
    });

    /// <summary>Builds an error reply.</summary>
    /// <param name="errorClass">The error class, e.g. <c>CommandNotFound</c> or <c>GenericError</c>.</param>
    /// <param name="description">The human-readable description.</param>
    /// <param name="id">The id of the command answered, or null.</param>
    /// <returns>The message.</returns>
    public static QmpMessage Error(string errorClass, string description, JsonElement? id) => Build(QmpMessageKind.Error, writer =>
    {
        writer.WriteStartObject(ErrorMember);
        writer.WriteString("class", errorClass);
        writer.WriteString("desc", description);
        writer.WriteEndObject();
        WriteId(writer, id);
    });

    /// <summary>Builds an event.</summary>
    /// <param name="name">The event name.</param>
    /// <param name="data">Its data, or null.</param>
    /// <param name="timestamp">When it happened.</param>
    /// <returns>The message.</returns>
    public static QmpMessage Event(string name, JsonElement? data, DateTimeOffset timestamp) => Build(QmpMessageKind.Event, writer =>
    {
        var sinceEpoch = (timestamp - DateTimeOffset.UnixEpoch).Ticks;
        writer.WriteStartObject(TimestampMember);
        writer.WriteNumber("seconds", sinceEpoch / TimeSpan.TicksPerSecond);
        writer.WriteNumber("microseconds", sinceEpoch % TimeSpan.TicksPerSecond / TimeSpan.TicksPerMicrosecond);
        writer.WriteEndObject();
        writer.WriteString(EventMember, name);
        if (data is { ValueKind: not JsonValueKind.Undefined } d)
        {
            writer.WritePropertyName(DataMember);
            d.WriteTo(writer);
        }
    });

    /// <summary>Builds a greeting.</summary>
    /// <param name="version">The version to announce.</param>
    /// <param name="capabilities">The capabilities to offer.</param>
    /// <returns>The message.</returns>
    public static QmpMessage Greeting(QmpVersion version, IEnumerable<string> capabilities) => Build(QmpMessageKind.Greeting, writer =>
    {
        writer.WriteStartObject(GreetingMember);
        writer.WritePropertyName("version");
        version.WriteTo(writer);
        writer.WriteStartArray("capabilities");
        foreach (var capability in capabilities)
        {
            writer.WriteStringValue(capability);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    });

    /// <summary>Reads a greeting's version and capabilities.</summary>
    /// <returns>The greeting.</returns>
    /// <exception cref="InvalidOperationException">This is not a greeting.</exception>
    /// <exception cref="QmpParseException">The greeting's version is malformed.</exception>
    public QmpGreeting ToGreeting()
    {
        if (Kind != QmpMessageKind.Greeting)
        {
            throw new InvalidOperationException($"A {Kind} message is not a greeting.");
        }

        var body = Root.GetProperty(GreetingMember);
        try
        {
            var version = body.GetProperty("version");
            var qemu = version.GetProperty("qemu");
            var package = version.TryGetProperty("package", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : string.Empty;
            var parsed = new QmpVersion(qemu.GetProperty("major").GetInt32(), qemu.GetProperty("minor").GetInt32(), qemu.GetProperty("micro").GetInt32(), package);
            var capabilities = body.GetProperty("capabilities").EnumerateArray().Select(c => c.GetString() ?? string.Empty).ToArray();
            return new QmpGreeting(parsed, capabilities);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw NotQmp(Root, "Malformed QMP greeting version", ex);
        }
    }

    /// <summary>Reads an event's name, data and timestamp.</summary>
    /// <returns>The event.</returns>
    /// <exception cref="InvalidOperationException">This is not an event.</exception>
    public QmpEvent ToEvent()
    {
        if (Kind != QmpMessageKind.Event)
        {
            throw new InvalidOperationException($"A {Kind} message is not an event.");
        }

        return new QmpEvent(EventName!, Member(DataMember), ReadTimestamp(), this);
    }

    /// <summary>Returns this message with its <c>id</c> member set to <paramref name="id"/>.</summary>
    /// <param name="id">The id.</param>
    /// <returns>A new message.</returns>
    public QmpMessage WithId(JsonElement id) => Build(Kind, writer =>
    {
        foreach (var member in Root.EnumerateObject())
        {
            if (member.NameEquals(IdMember))
            {
                continue;
            }

            member.WriteTo(writer);
        }

        WriteId(writer, id);
    });

    /// <summary>Writes the message as one JSON object.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteTo(Utf8JsonWriter writer) => Root.WriteTo(writer);

    /// <summary>The message as compact JSON text.</summary>
    /// <returns>The JSON text.</returns>
    public override string ToString() => Root.GetRawText();

    /// <summary>The event's timestamp, or <see cref="DateTimeOffset.MinValue"/> when absent, malformed or out of range.</summary>
    private DateTimeOffset ReadTimestamp()
    {
        const long MinimumSeconds = -62_135_596_800; // 0001-01-01
        const long MaximumSeconds = 253_402_300_799; // 9999-12-31T23:59:59
        if (Root.TryGetProperty(TimestampMember, out var timestamp) && timestamp.ValueKind == JsonValueKind.Object
            && timestamp.TryGetProperty("seconds", out var seconds) && seconds.ValueKind == JsonValueKind.Number && seconds.TryGetInt64(out var s)
            && timestamp.TryGetProperty("microseconds", out var micros) && micros.ValueKind == JsonValueKind.Number && micros.TryGetInt64(out var us)
            && s is >= MinimumSeconds and <= MaximumSeconds && us is >= 0 and < 1_000_000
            && (s < MaximumSeconds || us == 0))
        {
            return DateTimeOffset.FromUnixTimeSeconds(s).AddTicks(us * TimeSpan.TicksPerMicrosecond);
        }

        return DateTimeOffset.MinValue;
    }

    private JsonElement? Member(string name) => Root.TryGetProperty(name, out var value) ? value : null;

    private static bool IsString(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String;

    private static void WriteId(Utf8JsonWriter writer, JsonElement? id)
    {
        if (id is { ValueKind: not JsonValueKind.Undefined } value)
        {
            writer.WritePropertyName(IdMember);
            value.WriteTo(writer);
        }
    }

    private static QmpMessage Build(QmpMessageKind kind, Action<Utf8JsonWriter> writeMembers) => new(kind, QmpJson.Write(writer =>
    {
        writer.WriteStartObject();
        writeMembers(writer);
        writer.WriteEndObject();
    }));

    private static QmpParseException NotQmp(JsonElement root, string reason, Exception? inner = null)
        => new(reason, QmpParseException.Clip(JsonMarshal.GetRawUtf8Value(root)), inner);
}
