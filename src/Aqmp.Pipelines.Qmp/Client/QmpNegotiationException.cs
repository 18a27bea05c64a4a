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
        : base(SessionPhase, innerException)
    {
        Reason = reason;
    }

    /// <summary>What went wrong in the negotiation.</summary>
    public string Reason { get; }

    /// <summary>The phase, the reason and the cause, e.g. "Failed to establish session: QMP negotiation failed: the server refused qmp_capabilities: …".</summary>
    public override string Message => $"{ErrorMessage}: QMP negotiation failed: {Reason}: {InnerException!.Message}";
}
