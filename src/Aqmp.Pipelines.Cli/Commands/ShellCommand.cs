using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json;
using Aqmp.Pipelines.Cli.CommandLine;
using Aqmp.Pipelines.Cli.Shell;
using Aqmp.Pipelines.Cli.Shell.Editor;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp shell [ADDRESS]</c>: an interactive QMP shell, like QEMU's qmp-shell.</summary>
internal sealed class ShellCommand : ToolCommand
{
    private readonly Argument<string?> _address = new("ADDRESS")
    {
        Description = "the QMP server (HOST:PORT, [IPv6]:PORT, unix:PATH or a socket path); default $QMP_SOCKET, else the built-in simulator",
        Arity = ArgumentArity.ZeroOrOne,
    };

    private readonly Option<bool> _pretty = ValueOptions.Flag("--pretty", "indent replies", "-p");
    private readonly Option<bool> _hmp = ValueOptions.Flag("--hmp", "HMP mode: lines are HMP commands (info status, cpu N, ...), sent with human-monitor-command; HMP's text is printed as is", "-H");
    private readonly Option<bool> _verbose = ValueOptions.Flag("--verbose", "print each command, as JSON, before sending it", "-v");
    private readonly Option<bool> _skipNegotiation = ValueOptions.Flag("--skip-negotiation", "await no greeting, send no qmp_capabilities (qemu-ga)", "-N");
    private readonly Option<string?> _logFile = ValueOptions.Text("--logfile", "FILE", "append every message sent and received to FILE, a JSON line each", "-l");
    private readonly Option<string?> _historyFile = ValueOptions.Text("--history-file", "FILE", "where line history is kept ('' for none)");
    private readonly Option<TimeSpan?> _connectTimeout = ClientTimeouts.CreateConnectOption();

    /// <summary>Creates the subcommand; it reads and writes <paramref name="console"/>, editing lines when it is interactive.</summary>
    public ShellCommand(ToolConsole console)
        : base("shell", "interactive shell, as qmp-shell (built-in simulator without ADDRESS)")
    {
        Add(_address);
        Add(_pretty);
        Add(_hmp);
        Add(_verbose);
        Add(_skipNegotiation);
        Add(_logFile);
        Add(_historyFile);
        Add(_connectTimeout);
        SetAction((result, cancellationToken) => RunAsync(
            ReadOptions(result, Environment.GetEnvironmentVariable(ShellOptions.SocketVariable)),
            console.Input,
            console.Output,
            console.Error,
            console.Interactive ? new SystemTerminal(console.Output, console.Error) : null,
            cancellationToken));
    }

    public override string Usage => "aqmp shell [-p] [-H] [-v] [-N] [-l FILE] [--history-file FILE] [ADDRESS]";

    /// <summary>What the shell's local <c>help</c> prints: the line syntax and the shell's own commands.</summary>
    public const string Syntax = """
        Type a command as
            command key=value ...      e.g.  query-status
                                             human-monitor-command command-line='info version'
                                             blockdev-add driver=null-co node-name=n0 size=1048576
        (values are JSON where they parse, strings otherwise; 'text' is a string as typed; dotted
        keys nest: a.b=1), or as raw JSON: {"execute": "query-status"}. A transaction is typed as
            transaction(
            type key=value ...          one action a line; nothing is sent yet (prompt TRANS>)
            )                           sends one 'transaction' command with the actions
        Shell commands (not sent): help, history (earlier lines), !N (line N again), exit or Ctrl-D.
        """;

    public override string Details => $$"""
        An interactive QMP shell, like QEMU's qmp-shell.
        {{Syntax}}
        Replies are printed as one line of JSON (-p: indented); QMP errors as 'error: CLASS: DESC';
        events as they arrive, one line each.

        On a terminal, lines are edited as with readline: arrows, Home/End, Ctrl-A/E/U/K/W,
        Up/Down for earlier lines (kept in ~/.aqmp_history, or FILE, or $AQMP_HISTORY; empty:
        none), Tab completes command and argument names, Ctrl-C drops the line or interrupts a
        running command. Events are printed above the prompt.

        ADDRESS is HOST:PORT, [IPv6]:PORT, unix:PATH or any other text as a socket path (as
        qmp-shell); without it, $QMP_SOCKET; without either, the shell starts the
        built-in QMP simulator and connects to it.

        The shell ends at once when the session does: after quit (exit 0) or when the server goes
        away (exit 2, even while waiting at the prompt). Reading piped lines, it exits 1 if any
        command failed (a QMP error or a line that is not a command), else 0.
        """;

    /// <summary>
    /// What a parsed <c>aqmp shell</c> command line asks for: ADDRESS, else
    /// <paramref name="socketVariable"/> (the value of <c>QMP_SOCKET</c>), else none (the built-in simulator).
    /// </summary>
    public ShellOptions ReadOptions(ParseResult result, string? socketVariable)
    {
        var address = result.GetValue(_address) ?? (string.IsNullOrEmpty(socketVariable) ? null : socketVariable);
        return new ShellOptions
        {
            Address = address is null ? null : ShellAddress.Resolve(address),
            Pretty = result.GetValue(_pretty),
            Hmp = result.GetValue(_hmp),
            Verbose = result.GetValue(_verbose),
            SkipNegotiation = result.GetValue(_skipNegotiation),
            LogFile = result.GetValue(_logFile),
            HistoryFile = result.GetValue(_historyFile),
            ConnectTimeout = result.GetValue(_connectTimeout),
        };
    }

    /// <summary>The prompt the line editor shows, as qmp-shell's.</summary>
    private const string Prompt = "(QEMU) ";

    /// <summary>How long, after its reply to quit, the server is given to close the connection (and send its last events).</summary>
    private static readonly TimeSpan QuitGrace = TimeSpan.FromSeconds(3);

    /// <summary>How long the first prompt waits for the server's command names (Tab completion); a server that does not answer by then gets the prompt anyway.</summary>
    private static readonly TimeSpan CommandNamesWait = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Runs the shell. With a <paramref name="terminal"/>, lines are read with the
    /// <see cref="LineEditor"/> (history file, Tab completion from the server's commands, events
    /// printed above the prompt, Ctrl-C cancelling a running command); without one, plain lines
    /// are read from <paramref name="input"/>, nothing is prompted, and the exit code is 1 if a
    /// command failed. The shell ends as soon as the session does: 0 after <c>quit</c>, 2 when
    /// the server went away (noticed while waiting at the prompt too).
    /// </summary>
    public static async Task<int> RunAsync(ShellOptions options, TextReader input, TextWriter output, TextWriter error, ITerminal? terminal, CancellationToken cancellationToken)
    {
        var completion = new ShellCompletion();
        var editor = terminal is null ? null : new LineEditor(terminal, new LineHistory(ShellHistoryPath.Resolve(options.HistoryFile)), completion);
        if (editor is not null)
        {
            // Every write goes through the editor, under its lock, above the prompt.
            output = new LineEditorWriter(editor, error: false);
            error = new LineEditorWriter(editor, error: true);
        }

        await using var simulator = options.Address is null ? new QmpSimulator() : null;
        string address;
        if (simulator is null)
        {
            address = options.Address!;
        }
        else
        {
            var path = Path.Combine(Path.GetTempPath(), $"aqmp-shell-{Environment.ProcessId}.sock");
            await simulator.StartAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
            address = "unix:" + path;
            await output.WriteLineAsync($"No ADDRESS given: started the built-in QMP simulator at {address}.").ConfigureAwait(false);
        }

        var console = editor is null ? TextWriter.Synchronized(output) : output;
        await using var log = options.LogFile is null ? null : OpenLog(options.LogFile);
        await using var client = new ShellQmpClient(ClientTimeouts.Apply(options.ConnectTimeout, QmpClientOptions.Default), options.SkipNegotiation, log);
        using var events = client.Listen();
        try
        {
            await client.ConnectAsync(address, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"aqmp: interrupted while connecting to {address} (no QMP greeting yet)").ConfigureAwait(false);
            return ExitCodes.Interrupted;
        }

        await console.WriteLineAsync(client.Greeting is { } greeting
            ? $"Connected to QEMU {greeting.Version}; capabilities: [{string.Join(", ", greeting.Capabilities)}]"
            : $"Connected to {address} (no negotiation)").ConfigureAwait(false);
        if (options.Hmp)
        {
            await console.WriteLineAsync("HMP mode: lines are sent to the human monitor; 'help' lists its commands.").ConfigureAwait(false);
        }

        var printing = PrintEventsAsync(events, console);
        using var sessionOver = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var watching = WatchSessionAsync(client, sessionOver);
        var commandsKnown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var filling = editor is null || options.Hmp ? Task.CompletedTask : FillCompletionAsync(client, completion, commandsKnown, sessionOver.Token);
        if (!filling.IsCompleted)
        {
            // As qmp-shell, know the command names before the first prompt, so that Tab completes at once.
            await Task.WhenAny(commandsKnown.Task, Task.Delay(CommandNamesWait, sessionOver.Token)).ConfigureAwait(false);
        }

        var run = new ShellLineRunner(client, options, console, error);
        var history = new List<string>();
        var failed = false;
        var outcome = ShellLineOutcome.Done;
        while (!cancellationToken.IsCancellationRequested)
        {
            string? line;
            try
            {
                line = editor is null
                    ? await ReadPlainLineAsync(input, sessionOver.Token).ConfigureAwait(false)
                    : await editor.ReadLineAsync(run.Transaction.IsOpen ? ShellTransaction.Prompt : Prompt, sessionOver.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (sessionOver.IsCancellationRequested)
            {
                outcome = cancellationToken.IsCancellationRequested ? ShellLineOutcome.Done : ShellLineOutcome.SessionLost;
                break;
            }

            if (line is null || line.Trim() is "exit" or "quit()")
            {
                break;
            }

            line = line.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            if (line == "help" && !options.Hmp)
            {
                await console.WriteLineAsync(Syntax).ConfigureAwait(false);
                continue;
            }

            if (line == "history")
            {
                for (var i = 0; i < history.Count; i++)
                {
                    await console.WriteLineAsync($"{i + 1,4}  {history[i]}").ConfigureAwait(false);
                }

                continue;
            }

            if (line.StartsWith('!'))
            {
                if (!int.TryParse(line[1..], out var number) || number < 1 || number > history.Count)
                {
                    await error.WriteLineAsync($"no history line '{line[1..]}'").ConfigureAwait(false);
                    failed = true;
                    continue;
                }

                line = history[number - 1];
                await console.WriteLineAsync(line).ConfigureAwait(false);
            }

            history.Add(line);
            outcome = editor is null
                ? await run.RunAsync(line, cancellationToken).ConfigureAwait(false)
                : await RunInterruptibleLineAsync(editor, run, line, error, cancellationToken).ConfigureAwait(false);
            failed |= outcome == ShellLineOutcome.Failed;
            if (outcome is ShellLineOutcome.Quit or ShellLineOutcome.SessionLost)
            {
                break;
            }
        }

        if (outcome == ShellLineOutcome.Quit)
        {
            // Let the server close the connection by itself, delivering what it sent before exiting (SHUTDOWN).
            await Task.Delay(QuitGrace, sessionOver.Token).ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
        }

        await sessionOver.CancelAsync().ConfigureAwait(false);
        await filling.ConfigureAwait(false);
        await watching.ConfigureAwait(false);
        string? lostBecause = null;
        try
        {
            await client.DisconnectAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException or ProtocolException)
        {
            lostBecause = ex.Message;
        }

        await printing.ConfigureAwait(false);
        int status;
        if (outcome == ShellLineOutcome.Quit || run.QuitSent && lostBecause is null)
        {
            await console.WriteLineAsync("The server quit: session closed.").ConfigureAwait(false);
            status = failed && editor is null ? ExitCodes.QmpError : ExitCodes.Success;
        }
        else if (outcome == ShellLineOutcome.SessionLost || lostBecause is not null)
        {
            await error.WriteLineAsync($"aqmp: connection lost: {lostBecause ?? "the server closed the connection"}").ConfigureAwait(false);
            status = ExitCodes.ConnectionFailed;
        }
        else
        {
            status = failed && editor is null ? ExitCodes.QmpError : ExitCodes.Success;
        }

        await console.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        await error.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        return status;
    }

    private static StreamWriter OpenLog(string path)
    {
        try
        {
            return new StreamWriter(path, append: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot open the log file '{path}': {ex.Message}");
        }
    }

    /// <summary>Cancels <paramref name="sessionOver"/> as soon as the client's session is no longer running (the server went away).</summary>
    private static async Task WatchSessionAsync(QmpClient client, CancellationTokenSource sessionOver)
    {
        try
        {
            while (true)
            {
                // Wait on the current state's successor first, then look: no transition is missed.
                var change = client.WaitForRunstateChangeAsync(sessionOver.Token);
                if (client.Runstate != Runstate.Running)
                {
                    break;
                }

                await change.ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }

        await sessionOver.CancelAsync().ConfigureAwait(false);
    }

    /// <summary>Reads one line from piped input; null at its end.</summary>
    private static async Task<string?> ReadPlainLineAsync(TextReader input, CancellationToken cancellationToken)
    {
        // Console.In reads synchronously, even through ReadLineAsync, and ignores the token:
        // read on a pool thread and stop waiting when interrupted (the abandoned read ends with
        // the process).
        return await Task.Run(input.ReadLine, CancellationToken.None).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs one line as <see cref="ShellLineRunner.RunAsync"/>, while Ctrl-C on the terminal stops waiting for
    /// its reply (the session stays usable; the late reply is dropped) and returns to the prompt.
    /// </summary>
    private static async Task<ShellLineOutcome> RunInterruptibleLineAsync(LineEditor editor, ShellLineRunner run, string line, TextWriter error, CancellationToken cancellationToken)
    {
        using var interrupt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var stopWatching = new CancellationTokenSource();
        var watching = CancelOnInterruptAsync(editor, interrupt, stopWatching.Token);
        try
        {
            return await run.RunAsync(line, interrupt.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync("interrupted: the reply, if any, will be dropped").ConfigureAwait(false);
            return ShellLineOutcome.Done;
        }
        finally
        {
            await stopWatching.CancelAsync().ConfigureAwait(false);
            await watching.ConfigureAwait(false);
        }
    }

    private static async Task CancelOnInterruptAsync(LineEditor editor, CancellationTokenSource interrupt, CancellationToken stopWatching)
    {
        if (await editor.WaitForInterruptAsync(stopWatching).ConfigureAwait(false))
        {
            await interrupt.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Fills Tab completion from the server: command names from <c>query-commands</c>, then their
    /// argument names from <c>query-qmp-schema</c>. A server that answers neither leaves completion
    /// empty (or with command names only); nothing is reported. <paramref name="commandsKnown"/>
    /// completes once the command names are set, or could not be had.
    /// </summary>
    private static async Task FillCompletionAsync(QmpClient client, ShellCompletion completion, TaskCompletionSource commandsKnown, CancellationToken cancellationToken)
    {
        try
        {
            var commands = await client.ExecuteAsync("query-commands", cancellationToken: cancellationToken).ConfigureAwait(false);
            if (commands.ValueKind == JsonValueKind.Array)
            {
                completion.SetCommands(commands.EnumerateArray()
                    .Select(c => c.ValueKind == JsonValueKind.Object && c.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString() : null)
                    .OfType<string>()
                    .Concat(["exit", "history"]));
            }

            commandsKnown.TrySetResult();

            completion.SetArgumentsFromSchema(await client.ExecuteAsync("query-qmp-schema", cancellationToken: cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (ex is OperationCanceledException or QmpExecuteException or QmpExecuteInterruptedException or StateException or IOException or ProtocolException or EndOfStreamException)
        {
            // Completion is a convenience: the shell works without it.
        }
        finally
        {
            commandsKnown.TrySetResult();
        }
    }

    private static async Task PrintEventsAsync(QmpEventListener events, TextWriter console)
    {
        try
        {
            await foreach (var qmpEvent in events.ReadAllAsync().ConfigureAwait(false))
            {
                await console.WriteLineAsync($"event: {qmpEvent}").ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException or ProtocolException)
        {
            // The session ended; the main loop reports it.
        }
    }
}
