using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Transports;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Aqmp.Pipelines.Server;

/// <summary>
/// Serves many sessions at once: listens on one or more endpoints (TCP over IPv4 or IPv6,
/// Unix-domain sockets, TLS over either), accepts concurrently, makes one
/// <see cref="PipeProtocol{TMessage}"/> per connection with the factory, runs it until it ends,
/// and keeps the limits that stop one peer from hurting the rest.
/// </summary>
/// <remarks>
/// <para>
/// <b>Lifecycle of a connection.</b> Accepted (refused at once when
/// <see cref="PipeProtocolServerOptions.MaximumSessions"/> connections are already handshaking or
/// running); handshaking: the TLS handshake and the session's <c>EstablishSessionAsync</c>, within
/// <see cref="PipeProtocolServerOptions.HandshakeTimeout"/>; running, until the session ends by
/// itself (the peer closed, an error, its own <see cref="PipeProtocol{TMessage}.DisconnectAsync"/>)
/// or the server asks it to disconnect (idle timeout, shutdown); then the server completes its
/// disconnect, disposes it, and raises <see cref="SessionEnded"/>.
/// </para>
/// <para>
/// <b>Errors.</b> A session's failure ends that session only. Transient accept errors (out of
/// descriptors, an aborted client) are logged and retried with a backoff; any other accept error
/// ends accepting on that endpoint only, and is logged.
/// </para>
/// <para>
/// <b>Metrics.</b> The server publishes the instruments named in <see cref="ServerMetricNames"/> on
/// a meter named <see cref="ServerMetricNames.MeterName"/>.
/// </para>
/// </remarks>
/// <typeparam name="TMessage">The sessions' message type.</typeparam>
public sealed partial class PipeProtocolServer<TMessage> : IAsyncDisposable
{
    /// <summary>How many returned blocks the server's shared segment pool keeps at most.</summary>
    private const int SharedPoolRetention = 4096;

    private readonly Func<ServerConnectionInfo, PipeProtocol<TMessage>> _factory;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;
    private readonly TransportOptions _transportOptions;
    private readonly AcceptRateLimiter? _rateLimiter;
    private readonly ConcurrentDictionary<long, ServerSession<TMessage>> _sessions = new();
    private readonly long[] _endCounts = new long[Enum.GetValues<SessionEndReason>().Length];
    private long _nextId;
    private int _occupied;
    private int _handshaking;
    private int _running;
    private long _acceptErrors;

    /// <summary>Creates a server that listens nowhere yet.</summary>
    /// <param name="factory">
    /// Makes the session for an accepted connection, in <see cref="Runstate.Idle"/>; called once per
    /// connection, concurrently. If it throws, that connection is closed and counted as
    /// <see cref="SessionEndReason.HandshakeFailed"/>.
    /// </param>
    /// <param name="options">Limits and timeouts; the defaults when null.</param>
    /// <param name="loggerFactory">Where the server logs (category <c>Aqmp.Pipelines.Server.PipeProtocolServer</c>); nowhere when null.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public PipeProtocolServer(Func<ServerConnectionInfo, PipeProtocol<TMessage>> factory, PipeProtocolServerOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(factory);
        options ??= new PipeProtocolServerOptions();
        options.Validate();
        _factory = factory;
        Options = options;
        _logger = loggerFactory?.CreateLogger(LoggerCategory.For(typeof(PipeProtocolServer<>), null)) ?? NullLogger.Instance;
        _metrics = new ServerMetrics(options.MeterFactory);
        // One pool for every connection, keeping as many returned blocks as were ever in use at
        // once (up to a bound): sessions rent and return a block for each burst they send or
        // receive, and a pool sized for one connection would leave most of them to be allocated.
        _transportOptions = options.Transport.ToTransportOptions(new SegmentPool(options.Transport.MinimumSegmentSize, SharedPoolRetention));
        _rateLimiter = options.MaximumAcceptsPerSecond is { } rate ? new AcceptRateLimiter(rate) : null;
        _endSession = session => _ = EndRunningAsync(session);
        if (options.IdleTimeout != Timeout.InfiniteTimeSpan)
        {
            _idleSweep = Task.Run(SweepIdleSessionsAsync);
        }
    }

    /// <summary>
    /// Raised once per accepted connection when it has ended (refused ones included), after its
    /// session reached <see cref="Runstate.Idle"/> and was disposed; on the flow that served it.
    /// Each handler is called in turn; an exception from one is logged and the next is still called.
    /// </summary>
    public event EventHandler<SessionEndedEventArgs>? SessionEnded;

    /// <summary>The options the server was created with.</summary>
    public PipeProtocolServerOptions Options { get; }

    /// <summary>The addresses it listens on (TCP port 0 resolved), in the order bound.</summary>
    public IReadOnlyList<EndPoint> EndPoints
    {
        get
        {
            lock (_listenGate)
            {
                return [.. _listeners.Select(listener => listener.Listener.LocalEndPoint)];
            }
        }
    }

    /// <summary>Sessions running now.</summary>
    public int ActiveSessions => Volatile.Read(ref _running);

    /// <summary>Connections in their handshake now.</summary>
    public int ActiveHandshakes => Volatile.Read(ref _handshaking);

    /// <summary>Connections accepted so far, refused ones included.</summary>
    public long AcceptedConnections => Volatile.Read(ref _nextId);

    /// <summary>Connections refused so far because the server had its maximum of sessions.</summary>
    public long RefusedConnections => EndedSessions(SessionEndReason.Refused);

    /// <summary>Transient accept errors so far (each was retried).</summary>
    public long AcceptErrors => Volatile.Read(ref _acceptErrors);

    /// <summary>The meter the server's instruments are on.</summary>
    internal Meter Meter => _metrics.Meter;

    /// <summary>How many connections have ended for <paramref name="reason"/> so far.</summary>
    /// <param name="reason">The end reason.</param>
    /// <returns>The count.</returns>
    public long EndedSessions(SessionEndReason reason) => Volatile.Read(ref _endCounts[(int)reason]);

    /// <summary>The sessions running now (a snapshot).</summary>
    /// <returns>Each running session; its runstate may change at any moment.</returns>
    public IReadOnlyList<PipeProtocol<TMessage>> GetSessions()
        => [.. _sessions.Values.Where(session => session.IsRunning && session.Protocol is not null).Select(session => session.Protocol!)];

    /// <summary>Shuts down gracefully, as <see cref="ShutdownAsync"/> with no cancellation.</summary>
    /// <returns>A task that completes when every session has ended and every listener is closed.</returns>
    public async ValueTask DisposeAsync() => await ShutdownAsync(CancellationToken.None).ConfigureAwait(false);

    /// <inheritdoc />
    public override string ToString() => $"PipeProtocolServer on {string.Join(", ", EndPoints.Select(AddressParser.Format))}: {ActiveSessions} running, {ActiveHandshakes} handshaking";
}
