namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>What <c>aqmp shell</c> was asked to do: its flags, as qmp-shell's, and the server to talk to.</summary>
internal sealed record ShellOptions
{
    /// <summary>The environment variable qmp-shell takes the address from when none is given.</summary>
    public const string SocketVariable = "QMP_SOCKET";

    /// <summary>The server's address (see <see cref="ShellAddress"/>), or null for the built-in simulator.</summary>
    public string? Address { get; init; }

    /// <summary><c>-p</c>: replies indented over several lines instead of one line of JSON.</summary>
    public bool Pretty { get; init; }

    /// <summary><c>-H</c>: lines are HMP commands, sent with <c>human-monitor-command</c>; replies are HMP's text.</summary>
    public bool Hmp { get; init; }

    /// <summary><c>-v</c>: each command is printed, as JSON, before it is sent.</summary>
    public bool Verbose { get; init; }

    /// <summary><c>-N</c>: no greeting is awaited and no <c>qmp_capabilities</c> sent (for qemu-ga).</summary>
    public bool SkipNegotiation { get; init; }

    /// <summary><c>-l FILE</c>: every message sent and received is appended to FILE, one JSON line each.</summary>
    public string? LogFile { get; init; }

    /// <summary><c>--history-file FILE</c>, as given (see <see cref="ShellHistoryPath"/>).</summary>
    public string? HistoryFile { get; init; }

    /// <summary><c>--connect-timeout SECONDS</c>: the limit on connecting and on the QMP greeting, or null for the client's default.</summary>
    public TimeSpan? ConnectTimeout { get; init; }
}
