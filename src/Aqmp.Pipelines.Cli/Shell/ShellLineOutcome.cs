namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>What running one shell line came to.</summary>
internal enum ShellLineOutcome
{
    /// <summary>Done (a reply, or nothing to send yet); the session goes on.</summary>
    Done,

    /// <summary>The command failed (a QMP error, or the line is not a command); the session goes on.</summary>
    Failed,

    /// <summary>The command was <c>quit</c> and the server took it: the session is over, cleanly.</summary>
    Quit,

    /// <summary>The session ended before the reply.</summary>
    SessionLost,
}
