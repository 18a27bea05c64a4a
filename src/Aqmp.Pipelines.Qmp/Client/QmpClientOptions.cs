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

    /// <summary>The session's buffering and shutdown settings.</summary>
    public PipeProtocolOptions Session { get; init; } = PipeProtocolOptions.Default;

    /// <summary>The options used when none are given.</summary>
    public static QmpClientOptions Default { get; } = new();
}
