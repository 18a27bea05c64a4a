using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// QEMU 7.2's JSON parser (<c>json-parser.c</c>) over the tokens of one value: builds the value as
/// QEMU holds it (objects in <c>QDict</c> order, numbers as QEMU prints them, strings decoded as
/// modified UTF-8) or reports the first error with QEMU's words.
/// </summary>
internal sealed class QemuJsonParser
{
    private readonly List<QemuJsonToken> _tokens;
    private int _next;
    private string? _error;

    private QemuJsonParser(List<QemuJsonToken> tokens) => _tokens = tokens;

    /// <summary>Parses one value's tokens.</summary>
    /// <param name="tokens">The tokens, as the streamer emitted them.</param>
    /// <param name="value">The value, when it parses.</param>
    /// <returns>The error's description ("JSON parse error, …"), or null when the value parses.</returns>
    public static string? Parse(List<QemuJsonToken> tokens, out JsonElement value)
    {
        var parser = new QemuJsonParser(tokens);
        var node = parser.ParseValue();
        value = default;
        if (parser._error is not null || node is null)
        {
            return parser._error ?? "JSON parse error, expecting value";
        }

        var output = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true, MaxDepth = QemuJsonStreamer.MaximumNesting + 1 }))
        {
            Write(writer, node);
        }

        try
        {
            using var document = JsonDocument.Parse(output.WrittenMemory, new JsonDocumentOptions { MaxDepth = QemuJsonStreamer.MaximumNesting + 1 });
            value = document.RootElement.Clone();
            return null;
        }
        catch (JsonException)
        {
            // A double out of range, which QEMU prints as inf: not representable here.
            return "JSON parse error, number out of range";
        }
    }

    private static void Write(Utf8JsonWriter writer, object node)
    {
        switch (node)
        {
            case List<KeyValuePair<string, object>> members:
                writer.WriteStartObject();
                foreach (var member in QemuDictOrder.FromInsertion(members, m => m.Key))
                {
                    writer.WritePropertyName(member.Key);
                    Write(writer, member.Value);
                }

                writer.WriteEndObject();
                break;
            case List<object> items:
                writer.WriteStartArray();
                foreach (var item in items)
                {
                    Write(writer, item);
                }

                writer.WriteEndArray();
                break;
            case string text:
                writer.WriteStringValue(text);
                break;
            case Number number:
                writer.WriteRawValue(number.Text, skipInputValidation: true);
                break;
            case bool flag:
                writer.WriteBooleanValue(flag);
                break;
            default:
                writer.WriteNullValue();
                break;
        }
    }

    private QemuJsonToken? Peek() => _next < _tokens.Count ? _tokens[_next] : null;

    private QemuJsonToken? Pop() => _next < _tokens.Count ? _tokens[_next++] : null;

    private void Fail(string message) => _error ??= "JSON parse error, " + message;

    private object? ParseValue()
    {
        if (Peek() is not { } token)
        {
            Fail("premature EOI");
            return null;
        }

        switch (token.Type)
        {
            case QemuJsonTokenType.LeftCurly:
                return ParseObject();
            case QemuJsonTokenType.LeftSquare:
                return ParseArray();
            case QemuJsonTokenType.String:
                _next++;
                return ParseString(token.Text);
            case QemuJsonTokenType.Integer or QemuJsonTokenType.Float:
                _next++;
                return new Number(QemuNumber.Normalize(Encoding.ASCII.GetString(token.Text), token.Type == QemuJsonTokenType.Integer));
            case QemuJsonTokenType.Keyword:
                _next++;
                var keyword = Encoding.ASCII.GetString(token.Text);
                switch (keyword)
                {
                    case "true":
                        return true;
                    case "false":
                        return false;
                    case "null":
                        return Null.Instance;
                    default:
                        Fail($"invalid keyword '{keyword}'");
                        return null;
                }

            default:
                Fail("expecting value");
                return null;
        }
    }

    private object? ParseObject()
    {
        _next++;
        var members = new List<KeyValuePair<string, object>>();
        if (Peek() is not { } peek)
        {
            Fail("premature EOI");
            return null;
        }

        if (peek.Type == QemuJsonTokenType.RightCurly)
        {
            _next++;
            return members;
        }

        if (!ParsePair(members))
        {
            return null;
        }

        while (true)
        {
            if (Pop() is not { } token)
            {
                Fail("premature EOI");
                return null;
            }

            if (token.Type == QemuJsonTokenType.RightCurly)
            {
                return members;
            }

            if (token.Type != QemuJsonTokenType.Comma)
            {
                Fail("expected separator in dict");
                return null;
            }

            if (!ParsePair(members))
            {
                return null;
            }
        }
    }

    private bool ParsePair(List<KeyValuePair<string, object>> members)
    {
        if (Peek() is null)
        {
            Fail("premature EOI");
            return false;
        }

        if (ParseValue() is not string key)
        {
            Fail("key is not a string in object");
            return false;
        }

        if (Pop() is not { } colon)
        {
            Fail("premature EOI");
            return false;
        }

        if (colon.Type != QemuJsonTokenType.Colon)
        {
            Fail("missing : in object pair");
            return false;
        }

        if (ParseValue() is not { } value)
        {
            Fail("Missing value in dict");
            return false;
        }

        if (members.Exists(m => m.Key == key))
        {
            Fail("duplicate key");
            return false;
        }

        members.Add(new(key, value));
        return true;
    }

    private object? ParseArray()
    {
        _next++;
        var items = new List<object>();
        if (Peek() is not { } peek)
        {
            Fail("premature EOI");
            return null;
        }

        if (peek.Type == QemuJsonTokenType.RightSquare)
        {
            _next++;
            return items;
        }

        while (true)
        {
            if (ParseValue() is not { } item)
            {
                Fail("expecting value");
                return null;
            }

            items.Add(item);
            if (Pop() is not { } token)
            {
                Fail("premature EOI");
                return null;
            }

            if (token.Type == QemuJsonTokenType.RightSquare)
            {
                return items;
            }

            if (token.Type != QemuJsonTokenType.Comma)
            {
                Fail("expected separator in list");
                return null;
            }
        }
    }

    /// <summary>Decodes a string token as <c>parse_string</c> does.</summary>
    private string? ParseString(byte[] text)
    {
        var quote = text[0];
        var value = new StringBuilder();
        var i = 1;
        while (text[i] != quote)
        {
            if (text[i] == (byte)'\\')
            {
                var begin = i;
                i++;
                var escape = text[i++];
                switch (escape)
                {
                    case (byte)'"' or (byte)'\'' or (byte)'\\' or (byte)'/':
                        value.Append((char)escape);
                        break;
                    case (byte)'b':
                        value.Append('\b');
                        break;
                    case (byte)'f':
                        value.Append('\f');
                        break;
                    case (byte)'n':
                        value.Append('\n');
                        break;
                    case (byte)'r':
                        value.Append('\r');
                        break;
                    case (byte)'t':
                        value.Append('\t');
                        break;
                    case (byte)'u':
                        var codePoint = Hex4(text, i);
                        i += 4;
                        if (codePoint is >= 0xD800 and <= 0xDBFF && At(text, i) == '\\' && At(text, i + 1) == 'u')
                        {
                            codePoint = 0x10000 + ((codePoint & 0x3FF) << 10);
                            var trailing = Hex4(text, i + 2);
                            if (trailing is >= 0xDC00 and <= 0xDFFF)
                            {
                                codePoint |= trailing & 0x3FF;
                                i += 6;
                            }
                            else
                            {
                                codePoint = -1;
                            }
                        }

                        if (!QemuUtf8.IsValid(codePoint))
                        {
                            var shown = text.AsSpan(begin, Math.Min(i, text.Length) - begin);
                            Fail(QemuUtf8.DecodeLossy(shown) + " is not a valid Unicode character");
                            return null;
                        }

                        value.Append(char.ConvertFromUtf32(codePoint));
                        break;
                    default:
                        Fail("invalid escape sequence in string");
                        return null;
                }
            }
            else
            {
                var codePoint = QemuUtf8.CodePoint(text.AsSpan(i), out var length);
                if (codePoint < 0)
                {
                    Fail("invalid UTF-8 sequence in string");
                    return null;
                }

                value.Append(char.ConvertFromUtf32(codePoint));
                i += length;
            }
        }

        return value.ToString();
    }

    private static char At(byte[] text, int index) => index < text.Length ? (char)text[index] : '\0';

    private static int Hex4(byte[] text, int start)
    {
        var value = 0;
        for (var i = 0; i < 4; i++)
        {
            var digit = HexDigit(At(text, start + i));
            if (digit < 0)
            {
                return -1;
            }

            value = (value << 4) | digit;
        }

        return value;
    }

    private static int HexDigit(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };

    /// <summary>A number, as the text QEMU prints for it.</summary>
    private sealed record Number(string Text);

    /// <summary>JSON <c>null</c> (a node distinct from a missing value).</summary>
    private sealed class Null
    {
        public static readonly Null Instance = new();
    }
}
