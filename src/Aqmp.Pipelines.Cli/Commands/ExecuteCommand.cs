using Aqmp.Pipelines.Cli.Shell;
using Aqmp.Pipelines.Qmp.Client;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp execute ADDRESS COMMAND [JSON-ARGUMENTS]</c>: runs one command and prints its return value.</summary>
internal static class ExecuteCommand
{
    public const string Usage = "aqmp execute [--timeout SECONDS] [--connect-timeout SECONDS] ADDRESS COMMAND [JSON-ARGUMENTS]";

    public const string Help = $$"""
        usage: {{Usage}}

        Connects to the QMP server at ADDRESS, runs COMMAND with the JSON object JSON-ARGUMENTS
        (if given), prints the command's return value as JSON on stdout and exits 0.
        A QMP error prints 'error: CLASS: DESCRIPTION' on stderr and exits 1; a connection
        failure prints its cause and exits 2; no connection or no greeting within
        --connect-timeout (default 5 s; another client may hold the monitor) exits 3; no reply
        within --timeout exits 4; Ctrl-C exits 130, saying what it was waiting for.

        ADDRESS is unix:PATH, a path containing '/', HOST:PORT or [IPv6]:PORT.
        example: aqmp execute /run/qemu.sock query-status
                 aqmp execute localhost:4444 human-monitor-command '{"command-line": "info version"}'
        """;

    public static async Task<int> RunAsync(CliArguments args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        args.ExpectPositional(2, 3, Usage);
        var address = args.Positional[0];
        var command = args.Positional[1];
        System.Text.Json.JsonElement? arguments = null;
        if (args.Positional.Count == 3)
        {
            if (!JsonText.TryParse(args.Positional[2], out var parsed) || parsed.ValueKind != System.Text.Json.JsonValueKind.Object)
            {
                throw new UsageException($"JSON-ARGUMENTS must be a JSON object, not '{args.Positional[2]}'");
            }

            arguments = parsed;
        }

        var timeout = args.PositiveSeconds(ClientTimeouts.Option);
        await using var client = new QmpClient(ClientTimeouts.Apply(args, QmpClientOptions.Default) with { DefaultExecuteTimeout = timeout });
        var connected = false;
        try
        {
            await client.ConnectAsync(address, cancellationToken: cancellationToken).ConfigureAwait(false);
            connected = true;
            var value = await client.ExecuteAsync(command, arguments, cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync(JsonText.Pretty(value)).ConfigureAwait(false);
            return ExitCodes.Success;
        }
        catch (QmpExecuteException ex)
        {
            await error.WriteLineAsync($"error: {ex.ErrorClass}: {ex.Description}").ConfigureAwait(false);
            return ExitCodes.QmpError;
        }
        catch (TimeoutException) when (timeout is { } limit)
        {
            // Whether the command ran is unknown, as when interrupted.
            await error.WriteLineAsync($"aqmp: no reply to {command} within {ClientTimeouts.Describe(limit)} (--timeout)").ConfigureAwait(false);
            return ExitCodes.TimedOut;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Interrupted before the reply: whether the command ran is unknown, so never exit 0.
            await error.WriteLineAsync(connected
                ? $"aqmp: interrupted before the reply to {command} arrived (it may have run)"
                : $"aqmp: interrupted while connecting to {address} (no QMP greeting yet); {command} was not sent").ConfigureAwait(false);
            return ExitCodes.Interrupted;
        }
    }
}
