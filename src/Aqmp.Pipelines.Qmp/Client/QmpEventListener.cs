using System.Threading.Channels;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>
/// Receives the events of a <see cref="QmpClient"/> whose names it accepts, from the moment it is
/// created (events of a session before the greeting was processed included) until the session
/// ends or it is disposed. Several listeners may run at once; each gets its own copy of every
/// event it accepts.
/// </summary>
/// <remarks>
/// A listener buffers at most <see cref="Capacity"/> events; the read loop never waits for it.
/// When it falls further behind, <see cref="Policy"/> applies. When the session ends, the
/// enumeration ends: normally after a requested disconnect, with the root cause otherwise.
/// </remarks>
public sealed class QmpEventListener : IDisposable
{
    private readonly Channel<QmpEvent> _events;
    private readonly HashSet<string>? _names;
    private readonly Action<QmpEventListener> _unregister;
    private long _dropped;

    internal QmpEventListener(IEnumerable<string>? names, int capacity, QmpEventOverflowPolicy policy, Action<QmpEventListener> unregister)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _names = names is null ? null : new HashSet<string>(names, StringComparer.Ordinal);
        if (_names is { Count: 0 })
        {
            _names = null;
        }

        Capacity = capacity;
        Policy = policy;
        _unregister = unregister;
        _events = policy == QmpEventOverflowPolicy.DropOldest
            ? Channel.CreateBounded<QmpEvent>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleWriter = true }, _ => Interlocked.Increment(ref _dropped))
            : Channel.CreateBounded<QmpEvent>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.Wait, SingleWriter = true });
    }

    /// <summary>The event names accepted, or null for every event.</summary>
    public IReadOnlyCollection<string>? Names => _names;

    /// <summary>How many events the listener buffers.</summary>
    public int Capacity { get; }

    /// <summary>What happens when the buffer is full.</summary>
    public QmpEventOverflowPolicy Policy { get; }

    /// <summary>How many events were dropped under <see cref="QmpEventOverflowPolicy.DropOldest"/>.</summary>
    public long DroppedCount => Interlocked.Read(ref _dropped);

    /// <summary>Whether the listener accepts events named <paramref name="name"/>.</summary>
    /// <param name="name">An event name.</param>
    /// <returns>True when <see cref="Names"/> is null or contains it.</returns>
    public bool Accepts(string name) => _names is null || _names.Contains(name);

    /// <summary>
    /// Enumerates the events as they arrive. Ends when the session ends (with its root cause, if
    /// it failed), when the listener is disposed, or with <see cref="QmpEventOverflowException"/>
    /// after an overflow.
    /// </summary>
    /// <param name="cancellationToken">Stops the enumeration with <see cref="OperationCanceledException"/>.</param>
    /// <returns>The events.</returns>
    public IAsyncEnumerable<QmpEvent> ReadAllAsync(CancellationToken cancellationToken = default) => _events.Reader.ReadAllAsync(cancellationToken);

    /// <summary>Waits for the next event.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The next event.</returns>
    /// <exception cref="ChannelClosedException">The listener has ended; <see cref="Exception.InnerException"/> holds why, if it failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public ValueTask<QmpEvent> ReadAsync(CancellationToken cancellationToken = default) => _events.Reader.ReadAsync(cancellationToken);

    /// <summary>Stops listening; buffered events can still be read, then the enumeration ends.</summary>
    public void Dispose()
    {
        _unregister(this);
        _events.Writer.TryComplete();
    }

    /// <summary>Hands an event to the listener without ever waiting (called by the read loop).</summary>
    internal void Deliver(QmpEvent qmpEvent)
    {
        if (!Accepts(qmpEvent.Name) || _events.Writer.TryWrite(qmpEvent))
        {
            return;
        }

        // Full under EndListener (DropOldest never refuses), or already completed.
        if (_events.Writer.TryComplete(new QmpEventOverflowException(Capacity, qmpEvent.Name)))
        {
            _unregister(this);
        }
    }

    /// <summary>Ends the listener when the session ends.</summary>
    internal void Complete(Exception? error) => _events.Writer.TryComplete(error);
}
