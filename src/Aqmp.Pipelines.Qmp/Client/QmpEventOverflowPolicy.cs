namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>What an event listener does when its buffer is full: the read loop never waits for a listener.</summary>
public enum QmpEventOverflowPolicy
{
    /// <summary>Stop delivering to that listener: it yields what it buffered, then raises <see cref="QmpEventOverflowException"/>.</summary>
    EndListener,

    /// <summary>Drop the oldest buffered event to make room, counting drops in <see cref="QmpEventListener.DroppedCount"/>.</summary>
    DropOldest,
}
