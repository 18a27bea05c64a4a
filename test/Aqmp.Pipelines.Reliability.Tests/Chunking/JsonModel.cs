using System.Text.Json;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>A JSON number, as the exact token text it was written with.</summary>
/// <param name="Text">The token, e.g. <c>-0</c>, <c>1E+400</c> or <c>123456789012345678901234567890</c>.</param>
internal sealed record JsonNumberModel(string Text);

/// <summary>JSON <c>null</c> in a model.</summary>
internal sealed class JsonNullModel
{
    public static readonly JsonNullModel Instance = new();

    private JsonNullModel()
    {
    }
}

/// <summary>A JSON array in a model.</summary>
internal sealed class JsonArrayModel : List<object>;

/// <summary>A JSON object in a model: its members in wire order, names unique.</summary>
internal sealed class JsonObjectModel : List<KeyValuePair<string, object>>
{
    /// <summary>The member named <paramref name="name"/>, or null.</summary>
    /// <param name="name">The member name.</param>
    /// <returns>Its value, or null when absent.</returns>
    public object? Member(string name) => this.FirstOrDefault(m => m.Key == name).Value;
}

/// <summary>
/// Compares a parsed <see cref="JsonElement"/> with the model it was generated from: strings by
/// their decoded value, numbers by their exact token text, objects member by member in order.
/// </summary>
internal static class JsonModel
{
    /// <summary>Where <paramref name="actual"/> differs from <paramref name="expected"/>, or null when it does not.</summary>
    /// <param name="actual">The parsed value.</param>
    /// <param name="expected">The model: string, bool, <see cref="JsonNumberModel"/>, <see cref="JsonNullModel"/>, <see cref="JsonArrayModel"/> or <see cref="JsonObjectModel"/>.</param>
    /// <param name="path">Where the value is, for the description.</param>
    /// <returns>A description of the first difference, or null.</returns>
    public static string? Diff(JsonElement actual, object expected, string path)
    {
        switch (expected)
        {
            case string text:
                if (actual.ValueKind != JsonValueKind.String)
                {
                    return $"{path}: expected a string, got {Show(actual)}";
                }

                var decoded = actual.GetString()!;
                if (decoded == text)
                {
                    return null;
                }

                var at = decoded.AsSpan().CommonPrefixLength(text);
                return $"{path}: strings of {decoded.Length} and {text.Length} chars differ at char {at}: "
                    + $"got {Show(decoded[Math.Max(0, at - 8)..])}, expected {Show(text[Math.Max(0, at - 8)..])} (from char {Math.Max(0, at - 8)})";
            case JsonNumberModel number:
                return actual.ValueKind == JsonValueKind.Number && actual.GetRawText() == number.Text
                    ? null
                    : $"{path}: expected number {number.Text}, got {Show(actual)}";
            case bool flag:
                return actual.ValueKind == (flag ? JsonValueKind.True : JsonValueKind.False) ? null : $"{path}: expected {flag}, got {Show(actual)}";
            case JsonNullModel:
                return actual.ValueKind == JsonValueKind.Null ? null : $"{path}: expected null, got {Show(actual)}";
            case JsonArrayModel array:
                if (actual.ValueKind != JsonValueKind.Array || actual.GetArrayLength() != array.Count)
                {
                    return $"{path}: expected an array of {array.Count}, got {Show(actual)}";
                }

                var index = 0;
                foreach (var item in actual.EnumerateArray())
                {
                    if (Diff(item, array[index], $"{path}[{index}]") is { } itemDiff)
                    {
                        return itemDiff;
                    }

                    index++;
                }

                return null;
            case JsonObjectModel obj:
                if (actual.ValueKind != JsonValueKind.Object)
                {
                    return $"{path}: expected an object, got {Show(actual)}";
                }

                var member = 0;
                foreach (var property in actual.EnumerateObject())
                {
                    if (member == obj.Count)
                    {
                        return $"{path}: unexpected member {Show(property.Name)}";
                    }

                    if (property.Name != obj[member].Key)
                    {
                        return $"{path}: member {member} is named {Show(property.Name)}, expected {Show(obj[member].Key)}";
                    }

                    if (Diff(property.Value, obj[member].Value, $"{path}.{property.Name}") is { } memberDiff)
                    {
                        return memberDiff;
                    }

                    member++;
                }

                return member == obj.Count ? null : $"{path}: {member} members, expected {obj.Count}";
            default:
                throw new ArgumentException($"Not a JSON model: {expected.GetType()}", nameof(expected));
        }
    }

    private static string Show(JsonElement element) => Clip(element.GetRawText());

    /// <summary>Up to 40 chars of <paramref name="text"/>, quoted, anything but plain ASCII as <c>\uXXXX</c> (lone surrogates too).</summary>
    private static string Show(string text)
    {
        var shown = new System.Text.StringBuilder("\"");
        foreach (var c in text.AsSpan(0, Math.Min(text.Length, 40)))
        {
            shown.Append(c is >= ' ' and < (char)0x7F and not '"' and not '\\' ? c.ToString() : $"\\u{(int)c:X4}");
        }

        return shown.Append(text.Length > 40 ? "\"…" : "\"").ToString();
    }

    private static string Clip(string text) => text.Length <= 100 ? text : $"{text[..100]}…";
}
