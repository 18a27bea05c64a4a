using System.CommandLine;
using System.CommandLine.Help;
using Aqmp.Pipelines.Cli.Commands;

namespace Aqmp.Pipelines.Cli.CommandLine;

/// <summary>
/// <c>aqmp</c>'s command line, on System.CommandLine: the subcommands <c>shell</c>, <c>execute</c>,
/// <c>events</c>, <c>serve</c>, <c>completion</c> and <c>help</c>, <c>--help</c> (<c>-h</c>) on each,
/// and <c>--version</c>. Parsing never prints; <see cref="InvokeAsync"/> runs a command line that
/// parsed without errors.
/// </summary>
internal sealed class AqmpCommandLine
{
    /// <summary>The top of <c>aqmp --help</c>: every subcommand's synopsis, the exit codes, and what ADDRESS is.</summary>
    public const string Overview = """
        aqmp: talk to QEMU (or anything else speaking QMP) from the command line.

        usage:
          aqmp shell [-p] [-H] [-v] [-N] [-l FILE] [ADDRESS]  interactive shell, as qmp-shell (built-in simulator without ADDRESS)
          aqmp execute ADDRESS COMMAND [JSON-ARGUMENTS]       run one command, print its return value
                       [--timeout SECONDS]
          aqmp events ADDRESS [--name NAME]... [--count N]    print events as JSON lines
                      [--timeout SECONDS]
          aqmp serve ADDRESS                                  run the QMP simulator
          aqmp completion bash|zsh|fish                       print a shell completion script
          aqmp help [COMMAND]                                 this help, or COMMAND's
          aqmp --version                                      the tool's version

        exit codes:
          0   success (shell: input ended, exit, or quit)
          1   a QMP error (shell reading piped lines: some command failed)
          2   the connection failed or was lost
          3   no connection or no QMP greeting within --connect-timeout SECONDS (default 5;
              shell, execute, events): another client may hold the monitor
          4   --timeout SECONDS elapsed (execute: no reply; events: not finished)
          64  the command line is wrong
          130 interrupted (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT) before the reply arrived

        ADDRESS is unix:PATH, a path containing '/', HOST:PORT or [IPv6]:PORT.
        'aqmp COMMAND --help' tells more. QEMU serves QMP with, for example:
          qemu-system-x86_64 -M none -display none -qmp unix:/tmp/qmp.sock,server=on,wait=off
        """;

    private readonly InvocationConfiguration _invocation;

    /// <summary>Builds the command line; its commands read and write <paramref name="console"/>.</summary>
    public AqmpCommandLine(ToolConsole console)
    {
        Root = new RootCommand("aqmp: talk to QEMU (or anything else speaking QMP) from the command line.");

        // -h and --help only: '/?' and '/h' could be socket paths.
        foreach (var help in Root.Options.OfType<HelpOption>().ToList())
        {
            Root.Options.Remove(help);
        }

        Root.Options.Add(new HelpOption("--help", "-h") { Action = new HelpLayout() });
        Root.Add(new ShellCommand(console));
        Root.Add(new ExecuteCommand(console));
        Root.Add(new EventsCommand(console));
        Root.Add(new ServeCommand(console));
        Root.Add(new CompletionCommand(Root, console));
        Root.Add(new HelpCommand(Root));
        Root.SetAction(result => HelpAndFail(result));
        _invocation = new InvocationConfiguration
        {
            Output = console.Output,
            Error = console.Error,

            // The tool handles its own signals (AqmpTool) and its own exceptions.
            ProcessTerminationTimeout = null,
            EnableDefaultExceptionHandler = false,
        };
    }

    /// <summary>The width the help is wrapped to.</summary>
    public const int MaxWidth = 100;

    /// <summary>The root command, <c>aqmp</c>.</summary>
    public RootCommand Root { get; }

    /// <summary>Parses <paramref name="args"/> (the words after <c>aqmp</c>); a wrong command line shows in <see cref="ParseResult.Errors"/>.</summary>
    public ParseResult Parse(IReadOnlyList<string> args) => Root.Parse(args, new ParserConfiguration());

    /// <summary>
    /// Runs the command <paramref name="result"/> names (its help, with <c>--help</c>); returns its exit code.
    /// Exceptions of the command pass through; <paramref name="cancellationToken"/> interrupts it.
    /// </summary>
    public Task<int> InvokeAsync(ParseResult result, CancellationToken cancellationToken) => result.InvokeAsync(_invocation, cancellationToken);

    /// <summary><c>aqmp</c> alone: the help, and exit 64 since nothing was asked.</summary>
    private int HelpAndFail(ParseResult result)
    {
        Root.Parse(["--help"], result.Configuration).Invoke(result.InvocationConfiguration);
        return ExitCodes.Usage;
    }
}
