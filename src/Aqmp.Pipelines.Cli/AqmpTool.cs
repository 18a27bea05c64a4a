using System.Net.Sockets;
using System.Runtime.InteropServices;
using Aqmp.Pipelines.Cli.Commands;
using Aqmp.Pipelines.Cli.Shell;
using Aqmp.Pipelines.Cli.Shell.Editor;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Cli;

/// <summary>The tool's entry point: picks the subcommand and turns every failure into one line and an exit code.</summary>
internal static class AqmpTool
{
    public const string Help = """
        aqmp: talk to QEMU (or anything else speaking QMP) from the command line.

        usage:
          aqmp shell [-p] [-H] [-v] [-N] [-l FILE] [ADDRESS]  interactive shell, as qmp-shell (built-in simulator without ADDRESS)
          aqmp execute ADDRESS COMMAND [JSON-ARGUMENTS]       run one command, print its return value
                       [--timeout SECONDS]
          aqmp events ADDRESS [--name NAME]... [--count N]    print events as JSON lines
                      [--timeout SECONDS]
          aqmp serve ADDRESS                                  run the QMP simulator

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

    public static async Task<int> RunAsync(string[] args, TextReader input, TextWriter output, TextWriter error, bool interactive)
    {
        using var interrupted = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Interrupt(context, interrupted));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Interrupt(context, interrupted));
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context => Interrupt(context, interrupted));
        using var sigquit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, context => Interrupt(context, interrupted));
        var verb = args.FirstOrDefault();
        var rest = args.Skip(1);
        try
        {
            switch (verb)
            {
                case null or "--help" or "-h" or "help":
                    await output.WriteLineAsync(Help).ConfigureAwait(false);
                    return verb is null ? ExitCodes.Usage : ExitCodes.Success;
                case "shell":
                    return await WithHelpAsync(CliArguments.Parse(rest, ShellOptions.ValueOptions, ShellOptions.Flags, ShellOptions.ShortNames), ShellCommand.Help, output, a => ShellCommand.RunAsync(a, input, output, error, interactive ? new SystemTerminal(output, error) : null, interrupted.Token)).ConfigureAwait(false);
                case "execute":
                    return await WithHelpAsync(CliArguments.Parse(rest, ClientTimeouts.Option, ClientTimeouts.ConnectOption), ExecuteCommand.Help, output, a => ExecuteCommand.RunAsync(a, output, error, interrupted.Token)).ConfigureAwait(false);
                case "events":
                    return await WithHelpAsync(CliArguments.Parse(rest, "name", "count", ClientTimeouts.Option, ClientTimeouts.ConnectOption), EventsCommand.Help, output, a => EventsCommand.RunAsync(a, output, error, interrupted.Token)).ConfigureAwait(false);
                case "serve":
                    return await WithHelpAsync(CliArguments.Parse(rest, ServeCommand.NegotiationTimeoutOption), ServeCommand.Help, output, a => ServeCommand.RunAsync(a, output, error, interrupted.Token)).ConfigureAwait(false);
                default:
                    throw new UsageException($"unknown command '{verb}'");
            }
        }
        catch (Exception ex) when (ex is UsageException or FormatException)
        {
            await error.WriteLineAsync($"aqmp: {ex.Message}{Environment.NewLine}Try 'aqmp --help'.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        catch (OperationCanceledException) when (interrupted.IsCancellationRequested)
        {
            return ExitCodes.Success;
        }
        catch (Exception ex) when (ClientTimeouts.IsConnectTimeout(ex))
        {
            await error.WriteLineAsync($"aqmp: error: {Describe(ex)}").ConfigureAwait(false);
            return ExitCodes.ConnectTimedOut;
        }
        catch (Exception ex) when (ex is ConnectException or SocketException or IOException or ProtocolException or QmpExecuteInterruptedException)
        {
            await error.WriteLineAsync($"aqmp: error: {Describe(ex)}").ConfigureAwait(false);
            return ExitCodes.ConnectionFailed;
        }
    }

    private static async Task<int> WithHelpAsync(CliArguments args, string help, TextWriter output, Func<CliArguments, Task<int>> run)
    {
        if (args.Help)
        {
            await output.WriteLineAsync(help).ConfigureAwait(false);
            return ExitCodes.Success;
        }

        return await run(args).ConfigureAwait(false);
    }

    /// <summary>
    /// One line for a failure: a missing greeting says why it may be missing; otherwise the message,
    /// and the root cause's when it adds something.
    /// </summary>
    private static string Describe(Exception ex) => ex switch
    {
        QmpNegotiationException { InnerException: TimeoutException } noGreeting => noGreeting.Reason,
        ConnectException { InnerException: { } inner } connect when !connect.Message.Contains(inner.Message, StringComparison.Ordinal) => $"{connect.Message} ({inner.Message})",
        _ => ex.Message,
    };

    private static void Interrupt(PosixSignalContext context, CancellationTokenSource interrupted)
    {
        context.Cancel = true;
        interrupted.Cancel();
    }
}
