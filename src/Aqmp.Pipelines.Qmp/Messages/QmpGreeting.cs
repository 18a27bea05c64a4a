namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>The server's greeting: its version and the capabilities it offers.</summary>
/// <param name="Version">The QEMU version.</param>
/// <param name="Capabilities">The capabilities offered, e.g. <c>oob</c>.</param>
public sealed record QmpGreeting(QmpVersion Version, IReadOnlyList<string> Capabilities)
{
    /// <summary>Whether the server offers out-of-band execution.</summary>
    public bool OffersOutOfBand => Capabilities.Contains(QmpCapabilities.OutOfBand);
}
