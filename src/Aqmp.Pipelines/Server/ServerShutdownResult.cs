namespace Aqmp.Pipelines.Server;

/// <summary>How a server's sessions ended when it shut down.</summary>
public sealed class ServerShutdownResult
{
    internal ServerShutdownResult(int drained, int aborted, int handshakesCancelled)
    {
        Drained = drained;
        Aborted = aborted;
        HandshakesCancelled = handshakesCancelled;
    }

    /// <summary>Running sessions that ended before the deadline (asked to disconnect, or ending anyway).</summary>
    public int Drained { get; }

    /// <summary>Running sessions still ending at the deadline, whose drain was then abandoned and transport aborted.</summary>
    public int Aborted { get; }

    /// <summary>Connections still in their handshake, which were dropped at once.</summary>
    public int HandshakesCancelled { get; }

    /// <inheritdoc />
    public override string ToString() => $"{Drained} drained, {Aborted} aborted, {HandshakesCancelled} handshakes cancelled";
}
