namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>What <c>aqmp shell</c> was asked to do: its flags, as qmp-shell's, and the server to talk to.</summary>
internal sealed record ShellOptions
{
    /// <summary>The long names of the flags (options without a value).</summary>
    public static readonly string[] Flags = ["pretty", "hmp", "verbose", "skip-negotiation"];

    /// <summary>The long names of the options that take a value.</summary>
    public static readonly string[] ValueOptions = ["logfile", "history-file", ClientTimeouts.ConnectOption];

    /// <summary>qmp-shell's one-letter options.</summary>
    public static readonly IReadOnlyDictionary<char, string> ShortNames = new Dictionary<char, string>
    {
        ['p'] = "pretty",
        ['H'] = "hmp",
        ['v'] = "verbose",
        ['N'] = "skip-negotiation",
        ['l'] = "logfile",
    };

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

    /// <summary>
    /// Reads the shell's command line: ADDRESS, else <paramref name="socketVariable"/> (the value of
    /// <c>QMP_SOCKET</c>), else none (the built-in simulator).
    /// </summary>
    /// <exception cref="UsageException">More than one ADDRESS.</exception>
    public static ShellOptions From(CliArguments args, string? socketVariable, string usage)
    {
        args.ExpectPositional(0, 1, usage);
        var address = args.Positional.Count == 1 ? args.Positional[0] : string.IsNullOrEmpty(socketVariable) ? null : socketVariable;
        return new ShellOptions
        {
            Address = address is null ? null : ShellAddress.Resolve(address),
            Pretty = args.Flag("pretty"),
            Hmp = args.Flag("hmp"),
            Verbose = args.Flag("verbose"),
            SkipNegotiation = args.Flag("skip-negotiation"),
            LogFile = args.All("logfile").LastOrDefault(),
            HistoryFile = args.All("history-file").LastOrDefault(),
        };
    }
}
