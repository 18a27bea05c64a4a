namespace Aqmp.Pipelines.Server;

/// <summary>The end of one of a server's connections: which, why, with what error, after how long.</summary>
public sealed class SessionEndedEventArgs : EventArgs
{
    internal SessionEndedEventArgs(ServerConnectionInfo connection, SessionEndReason reason, Exception? error, TimeSpan duration)
    {
        Connection = connection;
        Reason = reason;
        Error = error;
        Duration = duration;
    }

    /// <summary>The connection.</summary>
    public ServerConnectionInfo Connection { get; }

    /// <summary>Why it ended.</summary>
    public SessionEndReason Reason { get; }

    /// <summary>The error that ended it (the session's root cause, or the handshake's failure); null for a clean end, a refusal or an idle timeout.</summary>
    public Exception? Error { get; }

    /// <summary>From accept to the end, handshake included.</summary>
    public TimeSpan Duration { get; }

    /// <inheritdoc />
    public override string ToString() => $"{Connection}: {Reason} after {Duration.TotalMilliseconds:0.#} ms{(Error is null ? string.Empty : ": " + Error.Message)}";
}
