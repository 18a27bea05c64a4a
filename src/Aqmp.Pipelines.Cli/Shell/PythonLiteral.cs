using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>
/// The Python forms of values that qmp-shell accepts in <c>key=value</c> and JSON does not:
/// integers as <c>int()</c> reads them, <c>True</c>/<c>FALSE</c> in any case, and dicts and lists
/// written as Python literals (single-quoted strings, <c>None</c>, <c>True</c>, <c>False</c>,
/// trailing commas). Each reads to the JSON value qmp-shell would send.
/// </summary>
internal static partial class PythonLiteral
{
    private static readonly JsonDocumentOptions Lenient = new() { AllowTrailingCommas = true };

    /// <summary>Reads an integer as Python's <c>int()</c> does: a sign, digits, single underscores between digits.</summary>
    /// <returns>Whether <paramref name="text"/> is one; <paramref name="value"/> is then the JSON number.</returns>
    public static bool TryInteger(string text, out JsonElement value)
    {
        value = default;
        if (!Integer().IsMatch(text))
        {
            return false;
        }

        var digits = text.TrimStart('+', '-').Replace("_", string.Empty, StringComparison.Ordinal).TrimStart('0');
        var canonical = digits.Length == 0 ? "0" : text[0] == '-' ? "-" + digits : digits;
        return JsonText.TryParse(canonical, out value);
    }

    /// <summary>Reads <c>true</c> or <c>false</c> in any mix of case, as qmp-shell does.</summary>
    /// <returns>Whether <paramref name="text"/> is one; <paramref name="value"/> is then the JSON boolean.</returns>
    public static bool TryBoolean(string text, out JsonElement value)
    {
        value = default;
        return (text.Equals("true", StringComparison.OrdinalIgnoreCase) || text.Equals("false", StringComparison.OrdinalIgnoreCase))
            && JsonText.TryParse(text.ToLowerInvariant(), out value);
    }

    /// <summary>Reads a Python dict or list literal of strings, numbers, booleans and <c>None</c> (JSON's literals too).</summary>
    /// <returns>Whether <paramref name="text"/> is one; <paramref name="value"/> is then its JSON value.</returns>
    public static bool TryContainer(string text, out JsonElement value)
    {
        value = default;
        var json = new StringBuilder(text.Length + 8);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c is '\'' or '"')
            {
                if (!TryReadString(text, ref i, out var inner))
                {
                    return false;
                }

                json.Append('"').Append(JsonEncodedText.Encode(inner, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).Value).Append('"');
            }
            else if (char.IsAsciiLetter(c) || c == '_')
            {
                var start = i;
                while (i + 1 < text.Length && (char.IsAsciiLetterOrDigit(text[i + 1]) || text[i + 1] == '_'))
                {
                    i++;
                }

                var name = text[start..(i + 1)];
                var literal = name switch
                {
                    "None" or "null" => "null",
                    "True" or "true" => "true",
                    "False" or "false" => "false",
                    _ => null,
                };
                if (literal is null && !(start > 0 && (char.IsAsciiDigit(text[start - 1]) || text[start - 1] == '.')))
                {
                    return false; // a name, not a literal; after a digit it is an exponent (1e5) for JSON to judge
                }

                json.Append(literal ?? name);
            }
            else
            {
                json.Append(c);
            }
        }

        try
        {
            using var document = JsonDocument.Parse(json.ToString(), Lenient);
            value = document.RootElement.Clone();
            return value.ValueKind is JsonValueKind.Object or JsonValueKind.Array;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Reads the Python string literal starting at <paramref name="i"/> (its quote); leaves <paramref name="i"/> on its closing quote.</summary>
    private static bool TryReadString(string text, ref int i, out string inner)
    {
        var quote = text[i];
        var builder = new StringBuilder();
        for (i++; i < text.Length; i++)
        {
            var c = text[i];
            if (c == quote)
            {
                inner = builder.ToString();
                return true;
            }

            if (c == '\\' && i + 1 < text.Length)
            {
                c = text[++i] switch
                {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    var other => other,
                };
            }

            builder.Append(c);
        }

        inner = string.Empty;
        return false;
    }

    [GeneratedRegex("^[+-]?[0-9]+(_[0-9]+)*$", RegexOptions.CultureInvariant)]
    private static partial Regex Integer();
}
