using System.Net.Sockets;
using System.Runtime.InteropServices;
using Aqmp.Pipelines.Cli.CommandLine;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Cli;

/// <summary>
/// The tool's entry point: parses the command line (<see cref="AqmpCommandLine"/>), runs the
/// subcommand, and turns every failure into one line and an exit code (<see cref="ExitCodes"/>):
/// a wrong command line into "aqmp: WHAT" and "Try 'aqmp COMMAND --help'." on stderr and 64.
/// </summary>
internal static class AqmpTool
{
    public static async Task<int> RunAsync(string[] args, TextReader input, TextWriter output, TextWriter error, bool interactive)
    {
        using var interrupted = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Interrupt(context, interrupted));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Interrupt(context, interrupted));
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context => Interrupt(context, interrupted));
        using var sigquit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, context => Interrupt(context, interrupted));
        var commandLine = new AqmpCommandLine(new ToolConsole(input, output, error, interactive));
        var parsed = commandLine.Parse(args);
        try
        {
            if (UsageError.Find(parsed) is { } wrong)
            {
                throw new UsageException(wrong);
            }

            return await commandLine.InvokeAsync(parsed, interrupted.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is UsageException or FormatException)
        {
            await error.WriteLineAsync($"aqmp: {ex.Message}{Environment.NewLine}{UsageError.Hint(parsed.CommandResult.Command)}").ConfigureAwait(false);
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
