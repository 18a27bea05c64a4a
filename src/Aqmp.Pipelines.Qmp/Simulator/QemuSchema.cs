using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// QEMU 7.2's QAPI schema as its <c>query-qmp-schema</c> returns it (<c>qemu-system-x86_64</c>
/// from Debian 12), shipped as a resource of this assembly and parsed once, on first use.
/// Lookups of commands and types are dictionary lookups.
/// </summary>
internal sealed class QemuSchema
{
    /// <summary>The one command QEMU registers after the generated ones: its marshaller is hand-written.</summary>
    private const string LateRegisteredCommand = "device_add";

    private static readonly Lazy<QemuSchema> Instance = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly JsonDocument _document;
    private readonly Dictionary<string, JsonElement> _types;
    private readonly Dictionary<string, QemuSchemaCommand> _commands;

    private QemuSchema(JsonDocument document)
    {
        _document = document;
        _types = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        _commands = new Dictionary<string, QemuSchemaCommand>(StringComparer.Ordinal);
        var registered = new List<string>();
        foreach (var entity in document.RootElement.EnumerateArray())
        {
            var name = entity.GetProperty("name").GetString()!;
            switch (entity.GetProperty("meta-type").GetString())
            {
                case "command":
                    var allowsOutOfBand = entity.TryGetProperty("allow-oob", out var oob) && oob.ValueKind == JsonValueKind.True;
                    _commands[name] = new QemuSchemaCommand(name, entity.GetProperty("arg-type").GetString()!, allowsOutOfBand);
                    if (name != LateRegisteredCommand)
                    {
                        registered.Add(name);
                    }

                    break;
                case "event":
                    break;
                default:
                    _types[name] = entity;
                    break;
            }
        }

        if (_commands.ContainsKey(LateRegisteredCommand))
        {
            registered.Add(LateRegisteredCommand);
        }

        registered.Reverse();
        CommandsAsListed = registered;
    }

    /// <summary>QEMU 7.2's schema, loaded on first use.</summary>
    public static QemuSchema Qemu72 => Instance.Value;

    /// <summary>The whole schema: the <c>return</c> value of <c>query-qmp-schema</c>, members in QEMU's order.</summary>
    public JsonElement Entities => _document.RootElement;

    /// <summary>
    /// The command names in the order <c>query-commands</c> lists them: the last registered first
    /// (QEMU registers the generated commands in schema order, then <c>device_add</c>).
    /// </summary>
    public IReadOnlyList<string> CommandsAsListed { get; }

    /// <summary>Finds a command.</summary>
    /// <param name="name">The command name.</param>
    /// <returns>The command, or null when the schema has none of that name.</returns>
    public QemuSchemaCommand? Command(string name) => _commands.GetValueOrDefault(name);

    /// <summary>A type by its (masked) name.</summary>
    /// <param name="name">The type name, e.g. <c>str</c>, <c>[int]</c> or <c>226</c>.</param>
    /// <returns>Its schema entity.</returns>
    /// <exception cref="KeyNotFoundException">The schema has no such type.</exception>
    public JsonElement Type(string name) => _types[name];

    private static QemuSchema Load()
    {
        using var stream = QemuResources.Open("qmp-schema.json");
        return new QemuSchema(JsonDocument.Parse(stream));
    }
}
