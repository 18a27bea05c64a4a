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
    private const string VersionMember = "version";
    private const string QemuMember = "qemu";
    private const string MajorMember = "major";
    private const string MinorMember = "minor";
    private const string MicroMember = "micro";
    private const string PackageMember = "package";
    private const string CapabilitiesMember = "capabilities";

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 128 };

    private QmpMessage(QmpMessageKind kind, JsonElement root, bool isRefusal = false)
    {
        Kind = kind;
        Root = root;
        IsRefusal = isRefusal;
    }

    /// <summary>What the message is.</summary>
    public QmpMessageKind Kind { get; }

    /// <summary>The whole message, a JSON object.</summary>
    public JsonElement Root { get; }

    /// <summary>The <c>id</c> member of a command or reply, when present.</summary>
    public JsonElement? Id => Member(IdMember);

    /// <summary>For a command, its name (<c>execute</c> or <c>exec-oob</c> member), never null; otherwise null.</summary>
    public string? CommandName => Kind == QmpMessageKind.Command ? (Member(ExecuteMember) ?? Member(ExecuteOutOfBandMember))!.Value.GetString() : null;

    /// <summary>Whether this is a command named <paramref name="name"/>, compared without allocating a string.</summary>
    /// <param name="name">The command name.</param>
    internal bool IsCommandNamed(string name)
        => Kind == QmpMessageKind.Command
           && (Root.TryGetProperty(ExecuteMember, out var value) || Root.TryGetProperty(ExecuteOutOfBandMember, out value))
           && value.ValueEquals(name);

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
    /// Whether this is the error reply a server makes to a request it refused as not a QMP
    /// command (see <see cref="Refusal(string, JsonElement?)"/>), rather than a message the peer sent.
    /// </summary>
    internal bool IsRefusal { get; }

    /// <summary>
    /// Parses one message from UTF-8 JSON, straight from the bytes (no intermediate string).
    /// </summary>
    /// <param name="utf8">One JSON object.</param>
    /// <returns>The message.</returns>
    /// <exception cref="QmpParseException">
    /// The bytes are not one JSON value, or the value is not a QMP message (see <see cref="FromJson"/>).
    /// </exception>
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

    /// <summary>
    /// Classifies a JSON value as a QMP message and validates it whole, so that no accessor of the
    /// message returned can fail.
    /// </summary>
    /// <remarks>
    /// <para>
    /// The value's text must be valid UTF-8 with no unpaired UTF-16 surrogate escape (such as
    /// <c>"\ud800"</c>), and the value a JSON object. It is then, in this order: a greeting when it has a <c>QMP</c> member (an object
    /// with a <c>version</c> object holding a <c>qemu</c> object of integer <c>major</c>,
    /// <c>minor</c> and <c>micro</c> that fit an <see cref="int"/> and an optional string
    /// <c>package</c>, and a <c>capabilities</c> array of strings); a command when it has an
    /// <c>execute</c> or <c>exec-oob</c> member of any type; a successful reply when it has a
    /// <c>return</c> member; an error reply when it has an <c>error</c> object with string
    /// <c>class</c> and <c>desc</c>; an event when its <c>event</c> member is a string.
    /// </para>
    /// <para>
    /// A command is checked member by member with QEMU's rules and refused with QEMU's words:
    /// <c>execute</c> or <c>exec-oob</c> not a string ("QMP input member 'execute' must be a
    /// string"), both present ("QMP input member 'exec-oob' is unexpected", naming the second),
    /// <c>arguments</c> not an object ("QMP input member 'arguments' must be an object"), any
    /// member but those and <c>id</c> ("QMP input member 'NAME' is unexpected"). A value that is
    /// not an object is refused with "QMP input must be a JSON object".
    /// </para>
    /// </remarks>
    /// <param name="root">The JSON value; it must own its data (not borrowed from a disposed document).</param>
    /// <returns>The message.</returns>
    /// <exception cref="QmpParseException">
    /// The value is not a QMP message; <see cref="QmpParseException.Reason"/> says why and
    /// <see cref="QmpParseException.Id"/> carries the object's <c>id</c> member, if any.
    /// </exception>
    public static QmpMessage FromJson(JsonElement root)
    {
        // The reader checks neither UTF-8 nor surrogate escapes until text is turned into strings
        // (and a member lookup unescapes names): check them here, before any lookup, so that no
        // later accessor can fail on a message that was accepted.
        if (!Utf8.IsValid(JsonMarshal.GetRawUtf8Value(root)))
        {
            throw Malformed(root, "Invalid UTF-8 in JSON text");
        }

        if (!EscapesDecode(root))
        {
            throw Malformed(root, "Unpaired UTF-16 surrogate escape in JSON text");
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Refuse(root, "QMP input must be a JSON object");
        }

        if (root.TryGetProperty(GreetingMember, out var greeting))
        {
            CheckGreeting(root, greeting);
            return new QmpMessage(QmpMessageKind.Greeting, root);
        }

        if (root.TryGetProperty(ExecuteMember, out _) || root.TryGetProperty(ExecuteOutOfBandMember, out _))
        {
            CheckCommand(root);
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
                throw Refuse(root, "Malformed QMP error reply");
            }

            return new QmpMessage(QmpMessageKind.Error, root);
        }

        if (IsString(root, EventMember))
        {
            return new QmpMessage(QmpMessageKind.Event, root);
        }

        throw Refuse(root, "JSON object is neither a QMP greeting, command, reply nor event");
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

    /// <summary>
    /// Builds the reply QEMU makes to a request it refuses as not a QMP command: a
    /// <c>GenericError</c> whose description is the refusal's reason, with the request's id.
    /// </summary>
    /// <param name="refusal">The refusal of a well-formed JSON value.</param>
    /// <returns>The error reply, marked as a refusal (<see cref="IsRefusal"/>).</returns>
    internal static QmpMessage Refusal(QmpParseException refusal) => Refusal(refusal.Reason, refusal.Id);

    /// <summary>
    /// Builds the reply QEMU makes to input it refuses: a <c>GenericError</c> with
    /// <paramref name="description"/>, and the request's id when it has one.
    /// </summary>
    /// <param name="description">Why the input is refused, in QEMU's words.</param>
    /// <param name="id">The request's id, or null.</param>
    /// <returns>The error reply, marked as a refusal (<see cref="IsRefusal"/>).</returns>
    internal static QmpMessage Refusal(string description, JsonElement? id)
    {
        var reply = Error("GenericError", description, id);
        return new QmpMessage(reply.Kind, reply.Root, isRefusal: true);
    }

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
        writer.WritePropertyName(VersionMember);
        version.WriteTo(writer);
        writer.WriteStartArray(CapabilitiesMember);
        foreach (var capability in capabilities)
        {
            writer.WriteStringValue(capability);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    });

    /// <summary>Reads a greeting's version and capabilities.</summary>
    /// <returns>The greeting.</returns>
    /// <remarks>A missing <c>package</c> reads as empty. Never fails on a greeting: <see cref="FromJson"/> validated it.</remarks>
    /// <exception cref="InvalidOperationException">This is not a greeting.</exception>
    public QmpGreeting ToGreeting()
    {
        if (Kind != QmpMessageKind.Greeting)
        {
            throw new InvalidOperationException($"A {Kind} message is not a greeting.");
        }

        var body = Root.GetProperty(GreetingMember);
        var version = body.GetProperty(VersionMember);
        var qemu = version.GetProperty(QemuMember);
        var package = version.TryGetProperty(PackageMember, out var p) ? p.GetString()! : string.Empty;
        var parsed = new QmpVersion(qemu.GetProperty(MajorMember).GetInt32(), qemu.GetProperty(MinorMember).GetInt32(), qemu.GetProperty(MicroMember).GetInt32(), package);
        var capabilities = body.GetProperty(CapabilitiesMember).EnumerateArray().Select(c => c.GetString()!).ToArray();
        return new QmpGreeting(parsed, capabilities);
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

    /// <summary>
    /// Checks a greeting's <c>QMP</c> member: a <c>version</c> object holding a <c>qemu</c> object
    /// of <see cref="int"/> <c>major</c>, <c>minor</c> and <c>micro</c> and an optional string
    /// <c>package</c>, and a <c>capabilities</c> array of strings.
    /// </summary>
    private static void CheckGreeting(JsonElement root, JsonElement greeting)
    {
        if (greeting.ValueKind != JsonValueKind.Object
            || !greeting.TryGetProperty(VersionMember, out var version) || version.ValueKind != JsonValueKind.Object
            || !greeting.TryGetProperty(CapabilitiesMember, out var capabilities) || capabilities.ValueKind != JsonValueKind.Array)
        {
            throw Refuse(root, "Malformed QMP greeting");
        }

        if (!version.TryGetProperty(QemuMember, out var qemu) || qemu.ValueKind != JsonValueKind.Object
            || !IsInt32(qemu, MajorMember) || !IsInt32(qemu, MinorMember) || !IsInt32(qemu, MicroMember)
            || (version.TryGetProperty(PackageMember, out var package) && package.ValueKind != JsonValueKind.String))
        {
            throw Refuse(root, "Malformed QMP greeting version");
        }

        foreach (var capability in capabilities.EnumerateArray())
        {
            if (capability.ValueKind != JsonValueKind.String)
            {
                throw Refuse(root, "Malformed QMP greeting capabilities");
            }
        }
    }

    /// <summary>
    /// Checks a command member by member as QEMU 7.2 does (<c>qmp_dispatch_check_obj</c>), with
    /// its error texts.
    /// </summary>
    private static void CheckCommand(JsonElement root)
    {
        string? executeMember = null;
        foreach (var member in root.EnumerateObject())
        {
            var name = member.NameEquals(ExecuteMember) ? ExecuteMember
                : member.NameEquals(ExecuteOutOfBandMember) ? ExecuteOutOfBandMember
                : null;
            if (name is not null)
            {
                if (member.Value.ValueKind != JsonValueKind.String)
                {
                    throw Refuse(root, $"QMP input member '{name}' must be a string");
                }

                if (executeMember is not null)
                {
                    throw Refuse(root, $"QMP input member '{name}' is unexpected");
                }

                executeMember = name;
            }
            else if (member.NameEquals(ArgumentsMember))
            {
                if (member.Value.ValueKind != JsonValueKind.Object)
                {
                    throw Refuse(root, "QMP input member 'arguments' must be an object");
                }
            }
            else if (!member.NameEquals(IdMember))
            {
                throw Refuse(root, $"QMP input member '{member.Name}' is unexpected");
            }
        }
    }

    private static bool IsInt32(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out _);

    /// <summary>
    /// Whether every string and member name in <paramref name="root"/> unescapes to valid UTF-16
    /// (no unpaired surrogate escape such as <c>\ud800</c>, which the reader lets through). Only
    /// text that may hold such an escape is walked.
    /// </summary>
    private static bool EscapesDecode(JsonElement root)
    {
        if (!MayEscapeSurrogate(JsonMarshal.GetRawUtf8Value(root)))
        {
            return true;
        }

        try
        {
            Unescape(root);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }

        static void Unescape(JsonElement element)
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var member in element.EnumerateObject())
                    {
                        _ = member.Name;
                        Unescape(member.Value);
                    }

                    break;
                case JsonValueKind.Array:
                    foreach (var item in element.EnumerateArray())
                    {
                        Unescape(item);
                    }

                    break;
                case JsonValueKind.String:
                    _ = element.GetString();
                    break;
            }
        }
    }

    /// <summary>Whether <paramref name="utf8"/> holds <c>\u</c> followed by D8 to DF (a surrogate; may be a false alarm, as in <c>\\ud800</c>).</summary>
    private static bool MayEscapeSurrogate(ReadOnlySpan<byte> utf8)
    {
        for (var at = utf8.IndexOf("\\u"u8); at >= 0 && at + 3 < utf8.Length; at = utf8.IndexOf("\\u"u8))
        {
            if ((utf8[at + 2] | 0x20) == 'd' && (utf8[at + 3] | 0x20) is (>= '8' and <= '9') or (>= 'a' and <= 'f'))
            {
                return true;
            }

            utf8 = utf8[(at + 2)..];
        }

        return false;
    }

    /// <summary>
    /// A refusal of a well-formed JSON value: it is JSON, but not a QMP message. It carries the
    /// object's id, if any.
    /// </summary>
    private static QmpParseException Refuse(JsonElement root, string reason)
    {
        var id = root.ValueKind == JsonValueKind.Object && root.TryGetProperty(IdMember, out var value) ? value : (JsonElement?)null;
        return new(reason, Excerpt(root), id) { IsWellFormedJson = true };
    }

    /// <summary>A refusal of JSON text that is not valid (a member lookup itself could fail on it): no id.</summary>
    private static QmpParseException Malformed(JsonElement root, string reason) => new(reason, Excerpt(root));

    private static string Excerpt(JsonElement root) => QmpParseException.Clip(JsonMarshal.GetRawUtf8Value(root));
}
