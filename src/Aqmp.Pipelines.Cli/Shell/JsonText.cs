using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>Formats JSON for people (indented) and for pipes (one line), without reflection.</summary>
internal static class JsonText
{
    private static readonly JsonWriterOptions Indented = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonWriterOptions OneLine = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The value, indented.</summary>
    public static string Pretty(JsonElement value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, Indented))
        {
            value.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>What <paramref name="write"/> writes, as one line of JSON.</summary>
    public static string Compact(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, OneLine))
        {
            write(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>The value, indented when <paramref name="pretty"/>, else on one line.</summary>
    public static string Format(JsonElement value, bool pretty) => pretty ? Pretty(value) : Compact(value.WriteTo);

    /// <summary>Tries to read <paramref name="text"/> as one JSON value.</summary>
    public static bool TryParse(string text, out JsonElement value)
    {
        try
        {
            var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(text));
            value = JsonElement.ParseValue(ref reader);
            if (!reader.Read())
            {
                return true;
            }
        }
        catch (JsonException)
        {
        }

        value = default;
        return false;
    }
}
