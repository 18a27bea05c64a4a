using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>Settings of a <see cref="QmpSimulator"/>.</summary>
public sealed record QmpSimulatorOptions
{
    /// <summary>The version the greeting announces. Default 7.2.22, package "aqmp-simulator".</summary>
    public QmpVersion Version { get; init; } = new(7, 2, 22, "aqmp-simulator");

    /// <summary>The capabilities the greeting offers. Default: <c>oob</c>.</summary>
    public IReadOnlyList<string> Capabilities { get; init; } = [QmpCapabilities.OutOfBand];

    /// <summary>Whether <c>quit</c> stops the simulator (as it ends QEMU). Default true.</summary>
    public bool StopOnQuit { get; init; } = true;

    /// <summary>
    /// The most bytes of one unfinished value the simulator buffers; a value still unfinished
    /// beyond it ends the session. QEMU refuses a value whose tokens exceed 64 MiB with
    /// "JSON token size limit exceeded" and goes on, and so does the simulator when this is above
    /// 64 MiB; QEMU buffers a single unfinished token without a bound, the simulator up to this.
    /// Default 65 MiB.
    /// </summary>
    public int MaximumMessageLength { get; init; } = DefaultMaximumMessageLength;

    /// <summary>The default of <see cref="MaximumMessageLength"/>: QEMU's 64 MiB limit on a value's tokens, and 1 MiB beyond it.</summary>
    public const int DefaultMaximumMessageLength = (int)QemuJsonStreamer.MaximumTokenSize + (1024 * 1024);

    /// <summary>
    /// How long a client may take, from its connection being accepted, to negotiate capabilities
    /// (<c>qmp_capabilities</c>): one that has not by then is disconnected, so that an idle or slow
    /// peer cannot hold one of the simulator's <see cref="MaximumClients"/> places (by default its
    /// only one, as QEMU's monitor serves one client at a time) for ever, and the next client is served. A client that negotiated keeps the monitor as long as it
    /// likes. Default 5 seconds; <see cref="Timeout.InfiniteTimeSpan"/> waits for ever, as QEMU does.
    /// </summary>
    public TimeSpan NegotiationTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How many accepted clients are served at once, each a monitor of the one simulated machine
    /// (as QEMU serves one client on each of its <c>-qmp</c> monitors); further clients wait in the
    /// listen backlog until one leaves. Default 1, as one QEMU monitor.
    /// </summary>
    public int MaximumClients { get; init; } = 1;

    /// <summary>
    /// Whether <c>StartAsync</c> on a Unix-domain path replaces a socket file there that no server
    /// answers on (what a simulator or QEMU that did not stop cleanly leaves behind). A socket a
    /// server answers on, and a file that is not a socket, are never removed. Default false.
    /// </summary>
    public bool ReplaceStaleSocket { get; init; }

    /// <summary>The sessions' buffering and shutdown settings.</summary>
    public PipeProtocolOptions Session { get; init; } = PipeProtocolOptions.Default;

    /// <summary>The options used when none are given.</summary>
    public static QmpSimulatorOptions Default { get; } = new();
}
