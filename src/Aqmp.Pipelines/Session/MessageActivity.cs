namespace Aqmp.Pipelines.Session;

/// <summary>
/// Told of the messages a running session delivers and flushes, and of its flushes that waited for
/// the transport (backpressure): the hook for message counters, called once per read, per flush
/// and per wait, never per message. A session without one pays a null check.
/// </summary>
internal abstract class MessageActivity
{
    /// <summary><paramref name="count"/> messages (at least one) of one read were delivered to the handler. Called on the read loop; must be quick and not throw.</summary>
    public abstract void MessagesReceived(int count);

    /// <summary>A flush handed <paramref name="count"/> framed messages (at least one) to the transport. Called under the session's send lock; must be quick and not throw.</summary>
    public abstract void MessagesSent(int count);

    /// <summary>A flush waited <paramref name="elapsed"/> for the transport to take what was unsent (senders queued meanwhile). Must be quick and not throw.</summary>
    public abstract void BackpressureWaited(TimeSpan elapsed);
}
