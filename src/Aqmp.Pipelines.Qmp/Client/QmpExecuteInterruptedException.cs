namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>
/// Raised to every execute still waiting for its reply when the session ends (the reply will never
/// come; whether the server ran the command is unknown), and to an execute made after <c>quit</c>
/// was sent (the command was not sent).
/// </summary>
public class QmpExecuteInterruptedException : ProtocolException
{
    /// <summary>Creates the error.</summary>
    /// <param name="command">The command whose reply was pending.</param>
    /// <param name="rootCause">The error that ended the session, or null for a requested disconnect.</param>
    public QmpExecuteInterruptedException(string command, Exception? rootCause)
        : base(rootCause is null
            ? $"{command}: the session was disconnected before the reply arrived."
            : $"{command}: the session ended before the reply arrived: {rootCause.Message}", rootCause)
    {
        Command = command;
    }

    /// <summary>Creates the error with its own reason: a command that was never sent, or a reply that will never come.</summary>
    /// <param name="command">The command.</param>
    /// <param name="reason">Why it has no reply, after "<paramref name="command"/>: ".</param>
    /// <param name="rootCause">The error that ended the session, or null.</param>
    public QmpExecuteInterruptedException(string command, string reason, Exception? rootCause)
        : base($"{command}: {reason}", rootCause)
    {
        Command = command;
    }

    /// <summary>The command whose reply was pending.</summary>
    public string Command { get; }
}
