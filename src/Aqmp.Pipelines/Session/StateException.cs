

namespace Aqmp.Pipelines.Session;

/// <summary>
/// Raised when a call is made in a <see cref="Runstate"/> that does not allow it (QEMU aqmp's <c>StateError</c>).
/// </summary>
public class StateException : ProtocolException
{
    /// <summary>Creates a state error.</summary>
    /// <param name="message">A human-readable description of the violation.</param>
    /// <param name="state">The runstate seen at the time of the call.</param>
    /// <param name="required">The runstate the call requires.</param>
    /// <param name="innerException">Why the session left the required state, when known.</param>
    public StateException(string message, Runstate state, Runstate required, Exception? innerException = null)
        : base(message, innerException)
    {
        State = state;
        Required = required;
    }

    /// <summary>The runstate seen at the time of the call.</summary>
    public Runstate State { get; }

    /// <summary>The runstate the call requires.</summary>
    public Runstate Required { get; }

    /// <summary>
    /// Builds QEMU aqmp's message for a call made in <paramref name="state"/>, e.g.
    /// "EchoClient is disconnected and idle.".
    /// </summary>
    /// <param name="typeName">The name of the protocol type, used as the subject of the message.</param>
    /// <param name="state">The runstate seen at the time of the call.</param>
    /// <returns>The message.</returns>
    public static string DescribeState(string typeName, Runstate state) => state switch
    {
        Runstate.Connecting => $"{typeName} is currently connecting.",
        Runstate.Disconnecting => $"{typeName} is disconnecting. Call DisconnectAsync() to return to Idle state.",
        Runstate.Running => $"{typeName} is already connected and running.",
        Runstate.Idle => $"{typeName} is disconnected and idle.",
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, null),
    };
}
