namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>Names of QMP capabilities.</summary>
public static class QmpCapabilities
{
    /// <summary>Out-of-band command execution (<c>exec-oob</c>).</summary>
    public const string OutOfBand = "oob";
}
