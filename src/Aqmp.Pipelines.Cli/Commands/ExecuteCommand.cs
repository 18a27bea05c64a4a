using System.CommandLine;
using System.Text.Json;
using Aqmp.Pipelines.Cli.CommandLine;
using Aqmp.Pipelines.Cli.Shell;
using Aqmp.Pipelines.Qmp.Client;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp execute ADDRESS COMMAND [JSON-ARGUMENTS]</c>: runs one command and prints its return value.</summary>
internal sealed class ExecuteCommand : ToolCommand
{
    private readonly Argument<string> _address = ServerAddress();
    private readonly Argument<string> _command = new("COMMAND") { Description = "the QMP command to run, e.g. query-status" };
    private readonly Argument<JsonElement?> _arguments = new("JSON-ARGUMENTS")
    {
        Description = "the command's arguments as one JSON object",
        Arity = ArgumentArity.ZeroOrOne,
        CustomParser = result =>
        {
            var text = result.Tokens[0].Value;
            if (JsonText.TryParse(text, out var parsed) && parsed.ValueKind == JsonValueKind.Object)
            {
                return parsed;
            }

            result.AddError($"JSON-ARGUMENTS must be a JSON object, not '{text}'");
            return null;
        },
    };

    private readonly Option<TimeSpan?> _timeout = ValueOptions.Seconds("--timeout", "limit on waiting for the reply (exit 4)");
    private readonly Option<TimeSpan?> _connectTimeout = ClientTimeouts.CreateConnectOption();

    /// <summary>Creates the subcommand; it writes to <paramref name="console"/>.</summary>
    public ExecuteCommand(ToolConsole console)
        : base("execute", "run one command, print its return value")
    {
        AddAll([_address, _command, _arguments], [_timeout, _connectTimeout]);
        SetAction((result, cancellationToken) => RunAsync(result, console.Output, console.Error, cancellationToken));
    }

    public override string Usage => "aqmp execute [--timeout SECONDS] [--connect-timeout SECONDS] ADDRESS COMMAND [JSON-ARGUMENTS]";

    public override string Details => """
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

    private async Task<int> RunAsync(ParseResult result, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var address = result.GetRequiredValue(_address);
        var command = result.GetRequiredValue(_command);
        var arguments = result.GetValue(_arguments);
        var timeout = result.GetValue(_timeout);
        await using var client = new QmpClient(ClientTimeouts.Apply(result.GetValue(_connectTimeout), QmpClientOptions.Default) with { DefaultExecuteTimeout = timeout });
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
