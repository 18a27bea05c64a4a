namespace Aqmp.Pipelines.Server;

/// <summary>
/// The names of the meter and instruments a <see cref="PipeProtocolServer{TMessage}"/> publishes
/// through <c>System.Diagnostics.Metrics</c> (readable with <c>dotnet-counters</c> and OpenTelemetry).
/// </summary>
public static class ServerMetricNames
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Aqmp.Pipelines";

    /// <summary>Up-down counter: sessions running now.</summary>
    public const string ActiveSessions = "aqmp.server.active_sessions";

    /// <summary>Up-down counter: connections in their TLS or session handshake now.</summary>
    public const string ActiveHandshakes = "aqmp.server.active_handshakes";

    /// <summary>Counter: sessions that reached running.</summary>
    public const string StartedSessions = "aqmp.server.started_sessions";

    /// <summary>Counter: connections ended, refused ones included, tagged with <see cref="EndReasonTag"/>.</summary>
    public const string EndedSessions = "aqmp.server.ended_sessions";

    /// <summary>Histogram (seconds): from accept to the end of each session that ran, tagged with <see cref="EndReasonTag"/>.</summary>
    public const string SessionDuration = "aqmp.server.session.duration";

    /// <summary>Histogram (seconds): from accept to running, for each handshake that succeeded.</summary>
    public const string HandshakeDuration = "aqmp.server.handshake.duration";

    /// <summary>Counter: connections refused at once because the server had its maximum of sessions.</summary>
    public const string RejectedConnections = "aqmp.server.rejected_connections";

    /// <summary>Counter: transient accept errors (each retried after a backoff).</summary>
    public const string AcceptErrors = "aqmp.server.accept_errors";

    /// <summary>Counter (bytes): received by all sessions, counted per read.</summary>
    public const string BytesReceived = "aqmp.server.io.received";

    /// <summary>Counter (bytes): sent by all sessions, counted per batch handed to the transport.</summary>
    public const string BytesSent = "aqmp.server.io.sent";

    /// <summary>Counter (messages): delivered to the sessions' handlers, counted per read.</summary>
    public const string MessagesReceived = "aqmp.server.messages.received";

    /// <summary>Counter (messages): framed by the sessions and handed to their transports, counted per flush.</summary>
    public const string MessagesSent = "aqmp.server.messages.sent";

    /// <summary>
    /// Histogram (seconds): each wait of a session's flush for its transport to take what was
    /// unsent (the peer is not reading fast enough); the session's senders queue meanwhile.
    /// </summary>
    public const string BackpressureDuration = "aqmp.server.backpressure.duration";

    /// <summary>The tag naming a <see cref="SessionEndReason"/> in snake case (<c>peer_closed</c>).</summary>
    public const string EndReasonTag = "aqmp.session.end_reason";

    /// <summary>The tag naming the transport: <c>tcp</c> or <c>unix</c>, as OpenTelemetry's <c>network.transport</c>.</summary>
    public const string TransportTag = "network.transport";
}
