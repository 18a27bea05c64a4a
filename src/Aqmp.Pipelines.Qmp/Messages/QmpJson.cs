using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>Small JSON helpers that need no reflection (trimming- and NativeAOT-safe).</summary>
public static class QmpJson
{
    /// <summary>Parses JSON text into a standalone <see cref="JsonElement"/>.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The value.</returns>
    /// <exception cref="JsonException">The text is not JSON.</exception>
    public static JsonElement Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json));
        return JsonElement.ParseValue(ref reader);
    }

    /// <summary>A JSON number as a standalone <see cref="JsonElement"/>.</summary>
    /// <param name="value">The number.</param>
    /// <returns>The value.</returns>
    public static JsonElement Number(long value)
    {
        Span<byte> digits = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, digits, out var written);
        var reader = new Utf8JsonReader(digits[..written]);
        return JsonElement.ParseValue(ref reader);
    }

    /// <summary>A JSON string as a standalone <see cref="JsonElement"/>.</summary>
    /// <param name="value">The string.</param>
    /// <returns>The value.</returns>
    public static JsonElement String(string value) => Write(writer => writer.WriteStringValue(value));

    /// <summary>Writes a value with <paramref name="write"/> and returns it as a standalone <see cref="JsonElement"/>.</summary>
    /// <param name="write">Writes exactly one JSON value.</param>
    /// <returns>The value.</returns>
    public static JsonElement Write(Action<Utf8JsonWriter> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        var reader = new Utf8JsonReader(buffer.WrittenSpan);
        return JsonElement.ParseValue(ref reader);
    }
}
