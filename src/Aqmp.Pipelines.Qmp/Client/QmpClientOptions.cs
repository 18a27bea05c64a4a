using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>Settings of a <see cref="QmpClient"/>.</summary>
public sealed record QmpClientOptions
{
    /// <summary>The largest accepted message in bytes. Default 10 MiB.</summary>
    public int MaximumMessageLength { get; init; } = QmpFramer.DefaultMaximumMessageLength;

    /// <summary>Whether to enable out-of-band execution when the server offers it. Default false.</summary>
    public bool EnableOutOfBand { get; init; }

    /// <summary>
    /// A timeout for every execute that has none of its own, or null for none (the default).
    /// A timed-out execute raises <see cref="TimeoutException"/>; its late reply is discarded and
    /// the session stays usable.
    /// </summary>
    public TimeSpan? DefaultExecuteTimeout { get; init; }

    /// <summary>How many events each listener buffers before <see cref="EventOverflowPolicy"/> applies. Default 1024.</summary>
    public int EventListenerCapacity { get; init; } = 1024;

    /// <summary>What a listener does when its buffer is full. Default <see cref="QmpEventOverflowPolicy.EndListener"/>.</summary>
    public QmpEventOverflowPolicy EventOverflowPolicy { get; init; } = QmpEventOverflowPolicy.EndListener;

    /// <summary>
    /// How long connecting the transport (the socket, and TLS when given) may take in
    /// <c>ConnectAsync</c>; it becomes the session's <see cref="PipeProtocolOptions.ConnectTimeout"/>,
    /// replacing the one in <see cref="Session"/>. When it runs out, <c>ConnectAsync</c> raises a
    /// <see cref="ConnectException"/> ("Failed to establish connection") wrapping a
    /// <see cref="TimeoutException"/>. Positive, at most <see cref="PipeProtocolOptions.MaximumTimeout"/>,
    /// or <see cref="Timeout.InfiniteTimeSpan"/> for no limit but the caller's token. Default 5 s.
    /// </summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long the server may take, once the transport is connected, to send its greeting. QEMU
    /// serves one client per monitor: a second client connects but gets no greeting until the first
    /// leaves. When it runs out, <c>ConnectAsync</c> raises <see cref="QmpNegotiationException"/>
    /// (saying no greeting arrived and another client may hold the monitor) wrapping a
    /// <see cref="TimeoutException"/>, and the client is back to <see cref="Runstate.Idle"/>. The
    /// wait for the reply to <c>qmp_capabilities</c> is bounded by as long again (the failure then
    /// says no reply came). Positive, at most
    /// <see cref="PipeProtocolOptions.MaximumTimeout"/>, or <see cref="Timeout.InfiniteTimeSpan"/>
    /// to wait as long as the caller's token allows. Default 5 s.
    /// </summary>
    public TimeSpan GreetingTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The session's buffering and shutdown settings.</summary>
    public PipeProtocolOptions Session { get; init; } = PipeProtocolOptions.Default;

    /// <summary>The options used when none are given.</summary>
    public static QmpClientOptions Default { get; } = new();

    /// <summary>Checks that every setting is in range (<see cref="Session"/> included).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range; its parameter name is the setting's.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(EventListenerCapacity, 1, nameof(EventListenerCapacity));
        ValidateTimeout(ConnectTimeout, nameof(ConnectTimeout));
        ValidateTimeout(GreetingTimeout, nameof(GreetingTimeout));
        Session.Validate();
    }

    /// <summary>The session options the client runs with: <see cref="Session"/> with <see cref="ConnectTimeout"/>.</summary>
    internal PipeProtocolOptions SessionWithTimeouts() => Session with { ConnectTimeout = ConnectTimeout };

    private static void ValidateTimeout(TimeSpan value, string name)
    {
        if (value != Timeout.InfiniteTimeSpan)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero, name);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, PipeProtocolOptions.MaximumTimeout, name);
        }
    }
}
