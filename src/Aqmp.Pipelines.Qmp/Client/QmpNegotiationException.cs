using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>
/// Raised by <see cref="QmpClient"/>'s connect when the peer is not a QMP server (no greeting,
/// not JSON, closed early) or refuses <c>qmp_capabilities</c>. A <see cref="ConnectException"/>
/// for the session phase; <see cref="Exception.InnerException"/> holds the cause.
/// </summary>
public class QmpNegotiationException : ConnectException
{
    /// <summary>Creates the error.</summary>
    /// <param name="reason">What went wrong in the negotiation.</param>
    /// <param name="innerException">The cause.</param>
    public QmpNegotiationException(string reason, Exception innerException)
        : base($"{SessionPhase}: QMP negotiation failed: {reason}", innerException)
    {
        Reason = reason;
    }

    /// <summary>What went wrong in the negotiation.</summary>
    public string Reason { get; }
}
