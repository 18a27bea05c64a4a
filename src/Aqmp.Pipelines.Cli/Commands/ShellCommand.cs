using System.Net.Sockets;
using Aqmp.Pipelines.Cli.Shell;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp shell [ADDRESS]</c>: an interactive QMP shell, like QEMU's qmp-shell.</summary>
internal static class ShellCommand
{
    public const string Usage = "aqmp shell [ADDRESS]";

    public const string Help = $$"""
        usage: {{Usage}}

        An interactive QMP shell. Type a command as
            command key=value ...      e.g.  query-status
                                             human-monitor-command command-line="info version"
                                             blockdev-add driver=null-co node-name=n0 size=1048576
        (values are JSON where they parse, strings otherwise; dotted keys nest: a.b=1), or as raw
        JSON: {"execute": "query-status"}. Replies are pretty-printed; events are printed as they
        arrive (one line each). 'history' lists earlier lines, '!N' repeats line N, 'exit' or Ctrl-D leaves.

        Without ADDRESS, the shell starts the built-in QMP simulator and connects to it.
        """;

    public static async Task<int> RunAsync(CliArguments args, TextReader input, TextWriter output, TextWriter error, bool interactive, CancellationToken cancellationToken)
    {
        args.ExpectPositional(0, 1, Usage);
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

        var console = TextWriter.Synchronized(output);
        await using var client = new QmpClient();
        using var events = client.Listen();
        await client.ConnectAsync(address, cancellationToken: cancellationToken).ConfigureAwait(false);
        var greeting = client.Greeting!;
        await console.WriteLineAsync($"Connected to QEMU {greeting.Version}; capabilities: [{string.Join(", ", greeting.Capabilities)}]").ConfigureAwait(false);
        var printing = PrintEventsAsync(events, console);

        var history = new List<string>();
        var status = ExitCodes.Success;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (interactive)
            {
                await console.WriteAsync("(QEMU) ").ConfigureAwait(false);
                await console.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            // Console.In reads synchronously, even through ReadLineAsync, and ignores the token:
            // read on a pool thread and stop waiting when interrupted (the abandoned read ends with
            // the process).
            string? line;
            try
            {
                line = await Task.Run(input.ReadLine, CancellationToken.None).WaitAsync(cancellationToken).ConfigureAwait(false);
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
            if (!await RunLineAsync(client, line, console, error, cancellationToken).ConfigureAwait(false))
            {
                status = client.IsPeerGoneCleanly() ? ExitCodes.Success : ExitCodes.ConnectionFailed;
                break;
            }
        }

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
        return status;
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
