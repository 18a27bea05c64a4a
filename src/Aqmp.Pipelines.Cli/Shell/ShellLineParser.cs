using System.Text;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>
/// Reads a shell line as a QMP command, as QEMU's qmp-shell does: either raw JSON
/// (<c>{"execute": "query-status"}</c>) or <c>command key=value ...</c>. A value is read as qmp-shell
/// reads it: an integer as Python's <c>int()</c> reads it (<c>n=1</c>, <c>+7</c>, <c>007</c>,
/// <c>1_000</c>), <c>true</c> and <c>false</c> in any case, and after <c>{</c> or <c>[</c> JSON or
/// else a Python literal (<c>{'a':None,'b':True}</c>); beyond qmp-shell, any other JSON value
/// (<c>x=1.5</c>, <c>null</c>, <c>s="a b"</c>) is taken as JSON and a value in single quotes is
/// the string between them (<c>command-line='info status'</c>). Anything else is a string
/// (<c>id=disk0</c>). Dotted keys nest (<c>a.b=1</c> → <c>{"a":{"b":1}}</c>).
/// </summary>
internal static class ShellLineParser
{
    /// <summary>Parses <paramref name="line"/> into a command message.</summary>
    /// <exception cref="FormatException">The line is not a command; the message says why.</exception>
    public static QmpMessage Parse(string line)
    {
        var trimmed = line.Trim();
        if (trimmed.StartsWith('{'))
        {
            QmpMessage message;
            try
            {
                message = QmpMessage.Parse(trimmed);
            }
            catch (QmpParseException ex)
            {
                throw new FormatException(ex.Message, ex);
            }

            return message.Kind == QmpMessageKind.Command
                ? message
                : throw new FormatException($"raw JSON must be a command ({{\"execute\": ...}}), not a {message.Kind} message");
        }

        var tokens = Tokenize(trimmed);
        if (tokens.Count == 0)
        {
            throw new FormatException("empty command");
        }

        var name = CommandName(tokens[0]);
        return tokens.Count == 1 ? QmpMessage.Command(name) : QmpMessage.Command(name, Arguments(tokens.Skip(1)));
    }

    /// <summary>Checks that <paramref name="token"/> can name a command (or a transaction action) and returns it.</summary>
    /// <exception cref="FormatException">It is a key=value pair.</exception>
    public static string CommandName(string token) =>
        token.Contains('=', StringComparison.Ordinal) ? throw new FormatException($"'{token}' is not a command name") : token;

    /// <summary>The JSON object that <c>key=value</c> <paramref name="tokens"/> make (empty for none).</summary>
    /// <exception cref="FormatException">A token is not key=value, or a key is given twice.</exception>
    public static JsonElement Arguments(IEnumerable<string> tokens)
    {
        var root = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var token in tokens)
        {
            var equals = token.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new FormatException($"argument '{token}' is not key=value");
            }

            Assign(root, token[..equals], token[(equals + 1)..]);
        }

        return QmpJson.Write(writer => WriteObject(writer, root));
    }

    private static void Assign(Dictionary<string, object> root, string key, string text)
    {
        var path = key.Split('.');
        var node = root;
        foreach (var part in path[..^1])
        {
            if (!node.TryGetValue(part, out var child))
            {
                node[part] = child = new Dictionary<string, object>(StringComparer.Ordinal);
            }

            node = child as Dictionary<string, object> ?? throw new FormatException($"'{key}': '{part}' is already a value");
        }

        var leaf = path[^1];
        if (leaf.Length == 0 || node.ContainsKey(leaf))
        {
            throw new FormatException($"argument '{key}' is empty or given twice");
        }

        node[leaf] = Value(text);
    }

    /// <summary>The value of <c>key=<paramref name="text"/></c>: a <see cref="JsonElement"/>, or the text as a string.</summary>
    private static object Value(string text)
    {
        if (IsSingleQuoted(text))
        {
            return Unquote(text);
        }

        if (PythonLiteral.TryInteger(text, out var integer) || PythonLiteral.TryBoolean(text, out integer))
        {
            return integer;
        }

        if (JsonText.TryParse(text, out var json))
        {
            return json;
        }

        return text.StartsWith('{') || text.StartsWith('[') ? PythonLiteral.TryContainer(text, out json) ? json : text : text;
    }

    private static bool IsSingleQuoted(string text) => text.Length >= 2 && text[0] == '\'' && text[^1] == '\'';

    /// <summary>The text between single quotes, with <c>\'</c> and <c>\\</c> read as the character escaped.</summary>
    private static string Unquote(string text)
    {
        var inner = new StringBuilder(text.Length);
        for (var i = 1; i < text.Length - 1; i++)
        {
            if (text[i] == '\\' && i + 1 < text.Length - 1 && text[i + 1] is '\'' or '\\')
            {
                i++;
            }

            inner.Append(text[i]);
        }

        return inner.ToString();
    }

    private static void WriteObject(Utf8JsonWriter writer, Dictionary<string, object> node)
    {
        writer.WriteStartObject();
        foreach (var (name, value) in node)
        {
            writer.WritePropertyName(name);
            switch (value)
            {
                case Dictionary<string, object> child:
                    WriteObject(writer, child);
                    break;
                case JsonElement json:
                    json.WriteTo(writer);
                    break;
                default:
                    writer.WriteStringValue((string)value);
                    break;
            }
        }

        writer.WriteEndObject();
    }

    /// <summary>Splits on spaces outside single or double quotes, brackets and braces; quotes are kept in the words.</summary>
    /// <exception cref="FormatException">A quote or bracket is left open.</exception>
    public static List<string> Tokenize(string line)
    {
        var tokens = new List<string>();
        var current = new StringBuilder();
        var depth = 0;
        var quote = '\0';
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (quote != '\0')
            {
                current.Append(c);
                if (c == '\\' && i + 1 < line.Length)
                {
                    current.Append(line[++i]);
                }
                else if (c == quote)
                {
                    quote = '\0';
                }

                continue;
            }

            switch (c)
            {
                case '"' or '\'':
                    quote = c;
                    break;
                case '[' or '{':
                    depth++;
                    break;
                case ']' or '}':
                    depth--;
                    break;
                case ' ' or '\t' when depth == 0:
                    if (current.Length > 0)
                    {
                        tokens.Add(current.ToString());
                        current.Clear();
                    }

                    continue;
            }

            current.Append(c);
        }

        if (quote != '\0' || depth != 0)
        {
            throw new FormatException("unbalanced quotes or brackets");
        }

        if (current.Length > 0)
        {
            tokens.Add(current.ToString());
        }

        return tokens;
    }
}
