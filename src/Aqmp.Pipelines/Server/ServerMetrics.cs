using System.Diagnostics.Metrics;

namespace Aqmp.Pipelines.Server;

/// <summary>
/// One server's instruments on its <see cref="Meter"/> (see <see cref="ServerMetricNames"/>).
/// Every recording checks <see cref="Instrument.Enabled"/> first where it would cost anything: with
/// no listener the per-read and per-send calls only read a flag.
/// </summary>
internal sealed class ServerMetrics : Session.MessageActivity, IDisposable
{
    private static readonly string[] ReasonNames =
        [.. Enum.GetValues<SessionEndReason>().Select(reason => ToSnakeCase(reason.ToString()))];

    private readonly bool _ownsMeter;
    private readonly UpDownCounter<long> _activeSessions;
    private readonly UpDownCounter<long> _activeHandshakes;
    private readonly Counter<long> _startedSessions;
    private readonly Counter<long> _endedSessions;
    private readonly Histogram<double> _sessionDuration;
    private readonly Histogram<double> _handshakeDuration;
    private readonly Counter<long> _rejectedConnections;
    private readonly Counter<long> _acceptErrors;
    private readonly Counter<long> _bytesReceived;
    private readonly Counter<long> _bytesSent;
    private readonly Counter<long> _messagesReceived;
    private readonly Counter<long> _messagesSent;
    private readonly Histogram<double> _backpressureDuration;

    public ServerMetrics(IMeterFactory? factory)
    {
        _ownsMeter = factory is null;
        Meter = factory?.Create(new MeterOptions(ServerMetricNames.MeterName)) ?? new Meter(ServerMetricNames.MeterName);
        _activeSessions = Meter.CreateUpDownCounter<long>(ServerMetricNames.ActiveSessions, "{session}", "Sessions running now.");
        _activeHandshakes = Meter.CreateUpDownCounter<long>(ServerMetricNames.ActiveHandshakes, "{connection}", "Connections in their TLS or session handshake now.");
        _startedSessions = Meter.CreateCounter<long>(ServerMetricNames.StartedSessions, "{session}", "Sessions that reached running.");
        _endedSessions = Meter.CreateCounter<long>(ServerMetricNames.EndedSessions, "{connection}", "Connections ended, by end reason.");
        _sessionDuration = Meter.CreateHistogram<double>(ServerMetricNames.SessionDuration, "s", "From accept to the end of each session that ran.");
        _handshakeDuration = Meter.CreateHistogram<double>(ServerMetricNames.HandshakeDuration, "s", "From accept to running.");
        _rejectedConnections = Meter.CreateCounter<long>(ServerMetricNames.RejectedConnections, "{connection}", "Connections refused at the session limit.");
        _acceptErrors = Meter.CreateCounter<long>(ServerMetricNames.AcceptErrors, "{error}", "Transient accept errors, each retried.");
        _bytesReceived = Meter.CreateCounter<long>(ServerMetricNames.BytesReceived, "By", "Bytes received by all sessions.");
        _bytesSent = Meter.CreateCounter<long>(ServerMetricNames.BytesSent, "By", "Bytes sent by all sessions.");
        _messagesReceived = Meter.CreateCounter<long>(ServerMetricNames.MessagesReceived, "{message}", "Messages delivered to the sessions' handlers.");
        _messagesSent = Meter.CreateCounter<long>(ServerMetricNames.MessagesSent, "{message}", "Messages framed and handed to the transports.");
        _backpressureDuration = Meter.CreateHistogram<double>(ServerMetricNames.BackpressureDuration, "s", "Each wait of a session's flush for its transport.");
    }

    /// <summary>The meter the instruments live on.</summary>
    public Meter Meter { get; }

    /// <summary>The snake-case name of <paramref name="reason"/>, as tagged.</summary>
    public static string NameOf(SessionEndReason reason) => ReasonNames[(int)reason];

    public void HandshakeStarted() => _activeHandshakes.Add(1);

    public void HandshakeEnded(bool succeeded, TimeSpan elapsed)
    {
        _activeHandshakes.Add(-1);
        if (succeeded)
        {
            _handshakeDuration.Record(elapsed.TotalSeconds);
            _activeSessions.Add(1);
            _startedSessions.Add(1);
        }
    }

    public void Ended(SessionEndReason reason, bool ran, TimeSpan elapsed, ServerTransportKind transport)
    {
        var reasonTag = new KeyValuePair<string, object?>(ServerMetricNames.EndReasonTag, NameOf(reason));
        var transportTag = new KeyValuePair<string, object?>(ServerMetricNames.TransportTag, transport == ServerTransportKind.Unix ? "unix" : "tcp");
        if (ran)
        {
            _activeSessions.Add(-1);
            _sessionDuration.Record(elapsed.TotalSeconds, reasonTag, transportTag);
        }

        _endedSessions.Add(1, reasonTag, transportTag);
    }

    public void Rejected() => _rejectedConnections.Add(1);

    public void AcceptError() => _acceptErrors.Add(1);

    public void Received(int bytes)
    {
        if (_bytesReceived.Enabled)
        {
            _bytesReceived.Add(bytes);
        }
    }

    public void Sent(long bytes)
    {
        if (_bytesSent.Enabled)
        {
            _bytesSent.Add(bytes);
        }
    }

    public override void MessagesReceived(int count)
    {
        if (_messagesReceived.Enabled)
        {
            _messagesReceived.Add(count);
        }
    }

    public override void MessagesSent(int count)
    {
        if (_messagesSent.Enabled)
        {
            _messagesSent.Add(count);
        }
    }

    public override void BackpressureWaited(TimeSpan elapsed)
    {
        if (_backpressureDuration.Enabled)
        {
            _backpressureDuration.Record(elapsed.TotalSeconds);
        }
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            Meter.Dispose();
        }
    }

    private static string ToSnakeCase(string name)
        => string.Concat(name.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "_" : string.Empty) + char.ToLowerInvariant(c) : c.ToString()));
}
