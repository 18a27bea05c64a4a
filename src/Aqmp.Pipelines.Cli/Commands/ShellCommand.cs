using System.Net.Sockets;
using System.Text.Json;
using Aqmp.Pipelines.Cli.Shell;
using Aqmp.Pipelines.Cli.Shell.Editor;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp shell [ADDRESS]</c>: an interactive QMP shell, like QEMU's qmp-shell.</summary>
internal static class ShellCommand
{
    public const string Usage = "aqmp shell [--history-file FILE] [ADDRESS]";

    public const string Help = $$"""
        usage: {{Usage}}

        An interactive QMP shell. Type a command as
            command key=value ...      e.g.  query-status
                                             human-monitor-command command-line="info version"
                                             blockdev-add driver=null-co node-name=n0 size=1048576
        (values are JSON where they parse, strings otherwise; dotted keys nest: a.b=1), or as raw
        JSON: {"execute": "query-status"}. Replies are pretty-printed; events are printed as they
        arrive (one line each). 'history' lists earlier lines, '!N' repeats line N, 'exit' or Ctrl-D leaves.

        On a terminal, lines are edited as with readline: arrows, Home/End, Ctrl-A/E/U/K/W,
        Up/Down for earlier lines (kept in ~/.aqmp_history, or FILE, or $AQMP_HISTORY; empty:
        none), Tab completes command and argument names, Ctrl-C drops the line or interrupts a
        running command. Events are printed above the prompt.

        Without ADDRESS, the shell starts the built-in QMP simulator and connects to it.
        """;

    /// <summary>The prompt the line editor shows, as qmp-shell's.</summary>
    private const string Prompt = "(QEMU) ";

    /// <summary>The option naming the history file (see <see cref="ShellHistoryPath"/>).</summary>
    public const string HistoryFileOption = "history-file";

    /// <summary>
    /// Runs the shell. With a <paramref name="terminal"/>, lines are read with the
    /// <see cref="LineEditor"/> (history file, Tab completion from the server's commands, events
    /// printed above the prompt, Ctrl-C cancelling a running command); without one, plain lines
    /// are read from <paramref name="input"/> and nothing is prompted.
    /// </summary>
    public static async Task<int> RunAsync(CliArguments args, TextReader input, TextWriter output, TextWriter error, ITerminal? terminal, CancellationToken cancellationToken)
    {
        args.ExpectPositional(0, 1, Usage);
        var completion = new ShellCompletion();
        var editor = terminal is null ? null : new LineEditor(terminal, new LineHistory(ShellHistoryPath.Resolve(args.All(HistoryFileOption).LastOrDefault())), completion);
        if (editor is not null)
        {
            // Every write goes through the editor, under its lock, above the prompt.
            output = new LineEditorWriter(editor, error: false);
            error = new LineEditorWriter(editor, error: true);
        }

        await using var simulator = args.Positional.Count == 0 ? new QmpSimulator() : null;
        string address;
        if (simulator is null)
        {
            address = args.Positional[0];
        }
        else
        {
            var path = Path.Combine(Path.GetTempPath(), $"aqmp-shell-{Environment.ProcessId}.sock");
            await simulator.StartAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
            address = "unix:" + path;
            await output.WriteLineAsync($"No ADDRESS given: started the built-in QMP simulator at {address}.").ConfigureAwait(false);
        }

        var console = editor is null ? TextWriter.Synchronized(output) : output;
        await using var client = new QmpClient();
        using var events = client.Listen();
        await client.ConnectAsync(address, cancellationToken: cancellationToken).ConfigureAwait(false);
        var greeting = client.Greeting!;
        await console.WriteLineAsync($"Connected to QEMU {greeting.Version}; capabilities: [{string.Join(", ", greeting.Capabilities)}]").ConfigureAwait(false);
        var printing = PrintEventsAsync(events, console);
        using var stopFilling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var filling = editor is null ? Task.CompletedTask : FillCompletionAsync(client, completion, stopFilling.Token);

        var history = new List<string>();
        var status = ExitCodes.Success;
        while (!cancellationToken.IsCancellationRequested)
        {
            string? line;
            try
            {
                line = editor is null
                    ? await ReadPlainLineAsync(input, cancellationToken).ConfigureAwait(false)
                    : await editor.ReadLineAsync(Prompt, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
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
                    continue;
                }

                line = history[number - 1];
                await console.WriteLineAsync(line).ConfigureAwait(false);
            }

            history.Add(line);
            var more = editor is null
                ? await RunLineAsync(client, line, console, error, cancellationToken).ConfigureAwait(false)
                : await RunInterruptibleLineAsync(editor, client, line, console, error, cancellationToken).ConfigureAwait(false);
            if (!more)
            {
                status = client.IsPeerGoneCleanly() ? ExitCodes.Success : ExitCodes.ConnectionFailed;
                break;
            }
        }

        await stopFilling.CancelAsync().ConfigureAwait(false);
        await filling.ConfigureAwait(false);
        try
        {
            await client.DisconnectAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException or ProtocolException)
        {
            await error.WriteLineAsync($"connection closed: {ex.Message}").ConfigureAwait(false);
            status = ExitCodes.ConnectionFailed;
        }

        await printing.ConfigureAwait(false);
        await console.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        await error.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        return status;
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
    /// Runs one line as <see cref="RunLineAsync"/>, while Ctrl-C on the terminal stops waiting for
    /// its reply (the session stays usable; the late reply is dropped) and returns to the prompt.
    /// </summary>
    private static async Task<bool> RunInterruptibleLineAsync(LineEditor editor, QmpClient client, string line, TextWriter console, TextWriter error, CancellationToken cancellationToken)
    {
        using var interrupt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var stopWatching = new CancellationTokenSource();
        var watching = CancelOnInterruptAsync(editor, interrupt, stopWatching.Token);
        try
        {
            return await RunLineAsync(client, line, console, error, interrupt.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync("interrupted: the reply, if any, will be dropped").ConfigureAwait(false);
            return true;
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
    /// empty (or with command names only); nothing is reported.
    /// </summary>
    private static async Task FillCompletionAsync(QmpClient client, ShellCompletion completion, CancellationToken cancellationToken)
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

            completion.SetArgumentsFromSchema(await client.ExecuteAsync("query-qmp-schema", cancellationToken: cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (ex is OperationCanceledException or QmpExecuteException or QmpExecuteInterruptedException or StateException or IOException or ProtocolException or EndOfStreamException)
        {
            // Completion is a convenience: the shell works without it.
        }
    }

    /// <summary>Runs one line; false when the session is over.</summary>
    private static async Task<bool> RunLineAsync(QmpClient client, string line, TextWriter console, TextWriter error, CancellationToken cancellationToken)
    {
        QmpMessage command;
        try
        {
            command = ShellLineParser.Parse(line);
        }
        catch (FormatException ex)
        {
            await error.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return true;
        }

        try
        {
            var reply = await client.ExecuteMessageAsync(command, cancellationToken).ConfigureAwait(false);
            if (reply.Kind == QmpMessageKind.Error)
            {
                await error.WriteLineAsync($"error: {reply.ErrorClass}: {reply.ErrorDescription}").ConfigureAwait(false);
            }
            else
            {
                await console.WriteLineAsync(JsonText.Pretty(reply.ReturnValue!.Value)).ConfigureAwait(false);
            }

            return client.Runstate == Runstate.Running;
        }
        catch (Exception ex) when (ex is QmpExecuteInterruptedException or StateException)
        {
            return false;
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

    private static bool IsPeerGoneCleanly(this QmpClient client) => client.Runstate != Runstate.Running;
}
