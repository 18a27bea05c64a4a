using System.Text;
using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Tests.Support;

/// <summary>JSON values as text a test can compare, whatever spacing the peer used.</summary>
internal static class JsonText
{
    /// <summary>The value written without whitespace, members in the order received.</summary>
    public static string Compact(this JsonElement element)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            element.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}
