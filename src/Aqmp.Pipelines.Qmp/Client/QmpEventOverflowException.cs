namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>
/// Ends an event listener that fell behind by more than its capacity under
/// <see cref="QmpEventOverflowPolicy.EndListener"/>: the events it had buffered are delivered
/// first, then this is raised, so that no event is lost silently.
/// </summary>
public class QmpEventOverflowException : ProtocolException
{
    /// <summary>Creates the error.</summary>
    /// <param name="capacity">The listener's capacity.</param>
    /// <param name="eventName">The event that did not fit.</param>
    public QmpEventOverflowException(int capacity, string eventName)
        : base($"The event listener fell more than {capacity} events behind; '{eventName}' and later events were not delivered to it.")
    {
        Capacity = capacity;
        EventName = eventName;
    }

    /// <summary>The listener's capacity.</summary>
    public int Capacity { get; }

    /// <summary>The first event that did not fit.</summary>
    public string EventName { get; }
}
