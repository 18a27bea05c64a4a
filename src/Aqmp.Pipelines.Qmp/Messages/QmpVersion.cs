namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>The QEMU version a greeting announces.</summary>
/// <param name="Major">The major version.</param>
/// <param name="Minor">The minor version.</param>
/// <param name="Micro">The micro version.</param>
/// <param name="Package">The distribution's package string (may be empty).</param>
public sealed record QmpVersion(int Major, int Minor, int Micro, string Package)
{
    /// <inheritdoc />
    public override string ToString() => string.IsNullOrEmpty(Package) ? $"{Major}.{Minor}.{Micro}" : $"{Major}.{Minor}.{Micro} ({Package})";
}
