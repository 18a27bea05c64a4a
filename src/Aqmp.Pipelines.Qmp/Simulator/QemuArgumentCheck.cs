using System.Globalization;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// Checks a command's arguments against QEMU's schema as QEMU 7.2's QObject input visitor does,
/// with its error texts: members in schema order (a flat union's variant members after its base),
/// a mandatory member absent is "Parameter 'a.b' is missing", a value of the wrong JSON type
/// "Invalid parameter type for 'a.b', expected: integer" (string, boolean, number, null, object,
/// array, or an alternate's name), an unknown enum value "Parameter 'b' does not accept value 'v'"
/// (the member's own name; <c>null</c> for a list element), and, once every known member is checked,
/// a member left over "Parameter 'a.b' is unexpected". List elements are named <c>a[0]</c>.
/// </summary>
/// <remarks>
/// The introspected schema says <c>int</c> for every integer type, so an integer passes when it fits
/// in QEMU's <c>int</c> (64 bits, signed): QEMU also checks the range of sized integers, and takes
/// values up to 2^64-1 for unsigned ones, which this refuses. Of
/// several unexpected members, QEMU names the first in GLib's hash table order; this names the
/// first one given.
/// </remarks>
internal static class QemuArgumentCheck
{
    /// <summary>
    /// The names QEMU's errors give the alternates of QEMU 7.2's schema, whose introspection masks them.
    /// </summary>
    private static readonly Dictionary<string, string> AlternateNames = new(StringComparer.Ordinal)
    {
        ["290"] = "BlockDirtyBitmapOrStr",
        ["334"] = "StrOrNull",
        ["518"] = "BlockdevRef",
        ["527"] = "BlockdevRefOrNull",
        ["528"] = "Qcow2OverlapChecks",
        ["626"] = "StatsValue",
    };

    private static readonly JsonElement NoArguments = QmpJson.Parse("{}");

    /// <summary>Checks arguments against an object type.</summary>
    /// <param name="schema">The schema.</param>
    /// <param name="argumentType">The command's argument type.</param>
    /// <param name="arguments">The arguments; none is an empty object, as in QEMU.</param>
    /// <returns>QEMU's error text, or null when the arguments are valid.</returns>
    public static string? Refusal(QemuSchema schema, string argumentType, JsonElement? arguments)
    {
        return Check(schema, argumentType, arguments ?? NoArguments, name: null, path: string.Empty);
    }

    private static string? Check(QemuSchema schema, string typeName, JsonElement value, string? name, string path)
    {
        if (typeName.StartsWith('['))
        {
            return CheckArray(schema, typeName[1..^1], value, path);
        }

        var type = schema.Type(typeName);
        var metaType = type.GetProperty("meta-type");
        if (metaType.ValueEquals("object"))
        {
            return value.ValueKind == JsonValueKind.Object ? CheckObject(schema, type, value, path) : WrongType(path, "object");
        }

        if (metaType.ValueEquals("builtin"))
        {
            return CheckScalar(type.GetProperty("json-type").GetString()!, value, path);
        }

        if (metaType.ValueEquals("enum"))
        {
            return CheckEnum(type, value, name, path);
        }

        return metaType.ValueEquals("alternate") ? CheckAlternate(schema, typeName, type, value, name, path) : null;
    }

    private static string? CheckScalar(string jsonType, JsonElement value, string path) => jsonType switch
    {
        "string" => value.ValueKind == JsonValueKind.String ? null : WrongType(path, "string"),
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False ? null : WrongType(path, "boolean"),
        "int" => IsInteger(value) ? null : WrongType(path, "integer"),
        "number" => value.ValueKind == JsonValueKind.Number ? null : WrongType(path, "number"),
        "null" => value.ValueKind == JsonValueKind.Null ? null : WrongType(path, "null"),
        _ => null,
    };

    private static string? CheckEnum(JsonElement type, JsonElement value, string? name, string path)
    {
        if (value.ValueKind != JsonValueKind.String)
        {
            return WrongType(path, "string");
        }

        var text = value.GetString()!;
        foreach (var allowed in type.GetProperty("values").EnumerateArray())
        {
            if (allowed.ValueEquals(text))
            {
                return null;
            }
        }

        return $"Parameter '{name ?? "null"}' does not accept value '{text}'";
    }

    private static string? CheckArray(QemuSchema schema, string elementType, JsonElement value, string path)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            return WrongType(path, "array");
        }

        var index = 0;
        foreach (var element in value.EnumerateArray())
        {
            var refusal = Check(schema, elementType, element, name: null, string.Create(CultureInfo.InvariantCulture, $"{path}[{index}]"));
            if (refusal is not null)
            {
                return refusal;
            }

            index++;
        }

        return null;
    }

    private static string? CheckAlternate(QemuSchema schema, string typeName, JsonElement type, JsonElement value, string? name, string path)
    {
        foreach (var branch in type.GetProperty("members").EnumerateArray())
        {
            var branchType = branch.GetProperty("type").GetString()!;
            if (Accepts(schema, branchType, value))
            {
                return Check(schema, branchType, value, name, path);
            }
        }

        return $"Invalid parameter type for '{name ?? "null"}', expected: {AlternateNames.GetValueOrDefault(typeName, typeName)}";
    }

    /// <summary>Whether an alternate's branch takes a value of this JSON type (QEMU picks the branch by it).</summary>
    private static bool Accepts(QemuSchema schema, string branchType, JsonElement value)
    {
        if (branchType.StartsWith('['))
        {
            return value.ValueKind == JsonValueKind.Array;
        }

        var type = schema.Type(branchType);
        return type.GetProperty("meta-type").GetString() switch
        {
            "builtin" => type.GetProperty("json-type").GetString() switch
            {
                "string" => value.ValueKind == JsonValueKind.String,
                "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
                "int" or "number" => value.ValueKind == JsonValueKind.Number,
                "null" => value.ValueKind == JsonValueKind.Null,
                _ => true,
            },
            "enum" => value.ValueKind == JsonValueKind.String,
            "object" => value.ValueKind == JsonValueKind.Object,
            _ => false,
        };
    }

    private static string? CheckObject(QemuSchema schema, JsonElement type, JsonElement value, string path)
    {
        var visited = 0;
        var refusal = CheckMembers(schema, type, value, path, ref visited);
        JsonElement? variant = null;
        if (refusal is null && type.TryGetProperty("tag", out var tag) && value.TryGetProperty(tag.GetString()!, out var tagValue))
        {
            foreach (var candidate in type.GetProperty("variants").EnumerateArray())
            {
                if (candidate.GetProperty("case").ValueEquals(tagValue.GetString()))
                {
                    variant = schema.Type(candidate.GetProperty("type").GetString()!);
                    refusal = CheckMembers(schema, variant.Value, value, path, ref visited);
                    break;
                }
            }
        }

        if (refusal is not null)
        {
            return refusal;
        }

        // Every member checked was given once, so a count that falls short means one was not checked.
        var given = 0;
        foreach (var member in value.EnumerateObject())
        {
            given++;
        }

        if (given == visited)
        {
            return null;
        }

        foreach (var member in value.EnumerateObject())
        {
            if (!HasMember(type, member.Name) && !(variant is { } variantType && HasMember(variantType, member.Name)))
            {
                return $"Parameter '{Join(path, member.Name)}' is unexpected";
            }
        }

        return null;
    }

    private static string? CheckMembers(QemuSchema schema, JsonElement type, JsonElement value, string path, ref int visited)
    {
        foreach (var member in type.GetProperty("members").EnumerateArray())
        {
            var name = member.GetProperty("name").GetString()!;
            if (!value.TryGetProperty(name, out var given))
            {
                if (!member.TryGetProperty("default", out _))
                {
                    return $"Parameter '{Join(path, name)}' is missing";
                }

                continue;
            }

            visited++;
            var refusal = Check(schema, member.GetProperty("type").GetString()!, given, name, Join(path, name));
            if (refusal is not null)
            {
                return refusal;
            }
        }

        return null;
    }

    private static bool HasMember(JsonElement type, string name)
    {
        foreach (var member in type.GetProperty("members").EnumerateArray())
        {
            if (member.GetProperty("name").ValueEquals(name))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsInteger(JsonElement value)
        => value.ValueKind == JsonValueKind.Number && !QemuNumber.IsDouble(value.GetRawText()) && value.TryGetInt64(out _);

    private static string WrongType(string path, string expected) => $"Invalid parameter type for '{(path.Length == 0 ? "null" : path)}', expected: {expected}";

    private static string Join(string path, string name) => path.Length == 0 ? name : path + "." + name;
}
