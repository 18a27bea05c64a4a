using System.Diagnostics.Metrics;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Server;

/// <summary>The limits and timeouts of a <see cref="PipeProtocolServer{TMessage}"/>.</summary>
public sealed record PipeProtocolServerOptions
{
    /// <summary>
    /// At most this many connections at once, handshaking or running; a connection accepted beyond it
    /// is closed at once and counted as refused. Default 10,000.
    /// </summary>
    public int MaximumSessions { get; init; } = 10_000;

    /// <summary>
    /// At most this many accepts per second over all endpoints (a token bucket holding one second's
    /// worth); connections beyond it wait in the system's backlog. Null (the default) for no limit.
    /// </summary>
    public double? MaximumAcceptsPerSecond { get; init; }

    /// <summary>
    /// The time from accept until the session runs: the TLS handshake and the session's
    /// <c>EstablishSessionAsync</c>. A connection not running by then is dropped (the slowloris
    /// defence). Default 10 s; <see cref="Timeout.InfiniteTimeSpan"/> for none.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A running session that neither received nor sent a byte for this long is disconnected
    /// (checked four times per timeout, so it ends between one and one and a half timeouts after
    /// its last activity). <see cref="Timeout.InfiniteTimeSpan"/> (the default) for none.
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>
    /// How long a disconnect the server asks for (at shutdown or an idle timeout) may drain before
    /// it is abandoned and the transport aborted. Default 5 s.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How many not-yet-accepted connections each listener's system queue holds. Default 512.</summary>
    public int ListenBacklog { get; init; } = 512;

    /// <summary>
    /// The buffering of the connections the server opens (receive buffer, zero-byte reads, send
    /// thresholds, linger); the sessions' own options do not apply to them. One segment pool is
    /// shared by all connections. Default: <see cref="PipeProtocolOptions"/>' defaults.
    /// </summary>
    /// <remarks>
    /// An idle session holds no receive buffer (with
    /// <see cref="PipeProtocolOptions.WaitForDataBeforeAllocatingBuffer"/>) and no send buffer (its
    /// send loop returns its block to the pool when everything was sent), whatever the
    /// <see cref="PipeProtocolOptions.MinimumSegmentSize"/>.
    /// </remarks>
    public PipeProtocolOptions Transport { get; init; } = new();

    /// <summary>
    /// Creates the server's <see cref="Meter"/> (named <see cref="ServerMetricNames.MeterName"/>);
    /// when null, the server creates its own meter of that name.
    /// </summary>
    public IMeterFactory? MeterFactory { get; init; }

    /// <summary>Raises <see cref="ArgumentOutOfRangeException"/> for a value out of range.</summary>
    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaximumSessions, 1, nameof(MaximumSessions));
        if (MaximumAcceptsPerSecond is { } rate && !(rate > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(MaximumAcceptsPerSecond), rate, "The accept rate must be positive.");
        }

        RequireTimeout(HandshakeTimeout, nameof(HandshakeTimeout));
        RequireTimeout(IdleTimeout, nameof(IdleTimeout));
        RequireTimeout(ShutdownTimeout, nameof(ShutdownTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(ListenBacklog, 1, nameof(ListenBacklog));
        ArgumentNullException.ThrowIfNull(Transport, nameof(Transport));
        Transport.Validate();
    }

    private static void RequireTimeout(TimeSpan value, string name)
    {
        if (value != Timeout.InfiniteTimeSpan && value < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(name, value, "A timeout is zero or more, or Timeout.InfiniteTimeSpan.");
        }
    }
}
