using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>The QEMU version a greeting announces.</summary>
/// <param name="Major">The major version.</param>
/// <param name="Minor">The minor version.</param>
/// <param name="Micro">The micro version.</param>
/// <param name="Package">The distribution's package string (may be empty).</param>
public sealed record QmpVersion(int Major, int Minor, int Micro, string Package)
{
    /// <summary>Writes the version as QEMU does: <c>{"qemu": {"micro": …, "minor": …, "major": …}, "package": …}</c>.</summary>
    /// <param name="writer">The writer.</param>
    public void WriteTo(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStartObject();
        writer.WriteStartObject("qemu");
        writer.WriteNumber("micro", Micro);
        writer.WriteNumber("minor", Minor);
        writer.WriteNumber("major", Major);
        writer.WriteEndObject();
        writer.WriteString("package", Package);
        writer.WriteEndObject();
    }

    /// <inheritdoc />
    public override string ToString() => string.IsNullOrEmpty(Package) ? $"{Major}.{Minor}.{Micro}" : $"{Major}.{Minor}.{Micro} ({Package})";
}
