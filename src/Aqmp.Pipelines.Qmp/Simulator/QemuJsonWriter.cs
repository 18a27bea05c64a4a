using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// Writes JSON as QEMU 7.2's monitor does (<c>qobject_to_json</c>): <c>": "</c> after a key,
/// <c>", "</c> between members and items, object members in <c>QDict</c> order, every character
/// outside printable ASCII escaped as <c>\uXXXX</c> in upper-case hex (<c>\b \f \n \r \t</c> by name),
/// <c>/</c> not escaped, integers as they are held, doubles (a number with a point or an exponent)
/// as C's <c>%.17g</c>.
/// </summary>
internal static class QemuJsonWriter
{
    /// <summary>Writes <paramref name="value"/> into <paramref name="output"/>.</summary>
    /// <param name="value">The value; object members that share a <c>QDict</c> bucket keep their order.</param>
    /// <param name="output">Where to write.</param>
    public static void Write(JsonElement value, IBufferWriter<byte> output)
    {
        var text = new StringBuilder();
        Append(text, value);
        var bytes = Encoding.ASCII.GetBytes(text.ToString());
        output.Write(bytes);
    }

    private static void Append(StringBuilder text, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                text.Append('{');
                var first = true;
                foreach (var member in QemuDictOrder.Stable(value.EnumerateObject(), m => m.Name))
                {
                    if (!first)
                    {
                        text.Append(", ");
                    }

                    first = false;
                    AppendString(text, member.Name);
                    text.Append(": ");
                    Append(text, member.Value);
                }

                text.Append('}');
                break;
            case JsonValueKind.Array:
                text.Append('[');
                var firstItem = true;
                foreach (var item in value.EnumerateArray())
                {
                    if (!firstItem)
                    {
                        text.Append(", ");
                    }

                    firstItem = false;
                    Append(text, item);
                }

                text.Append(']');
                break;
            case JsonValueKind.String:
                AppendString(text, value.GetString()!);
                break;
            case JsonValueKind.Number:
                var number = value.GetRawText();
                text.Append(QemuNumber.IsDouble(number) ? QemuNumber.FormatG17(value.GetDouble()) : number);
                break;
            case JsonValueKind.True:
                text.Append("true");
                break;
            case JsonValueKind.False:
                text.Append("false");
                break;
            default:
                text.Append("null");
                break;
        }
    }

    private static void AppendString(StringBuilder text, string value)
    {
        text.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"':
                    text.Append("\\\"");
                    break;
                case '\\':
                    text.Append("\\\\");
                    break;
                case '\b':
                    text.Append("\\b");
                    break;
                case '\f':
                    text.Append("\\f");
                    break;
                case '\n':
                    text.Append("\\n");
                    break;
                case '\r':
                    text.Append("\\r");
                    break;
                case '\t':
                    text.Append("\\t");
                    break;
                case < ' ' or >= '\x7F':
                    text.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                    break;
                default:
                    text.Append(c);
                    break;
            }
        }

        text.Append('"');
    }
}
