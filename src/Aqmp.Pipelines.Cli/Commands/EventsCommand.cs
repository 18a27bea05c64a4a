using System.CommandLine;
using Aqmp.Pipelines.Cli.CommandLine;
using Aqmp.Pipelines.Qmp.Client;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp events ADDRESS [--name NAME]... [--count N]</c>: prints events as JSON lines.</summary>
internal sealed class EventsCommand : ToolCommand
{
    private readonly Argument<string> _address = ServerAddress();
    private readonly Option<string[]> _name = new("--name")
    {
        Description = "print only events of this name (repeatable)",
        HelpName = "NAME",
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    private readonly Option<int?> _count = ValueOptions.PositiveInteger("--count", "N", "stop after N events");
    private readonly Option<TimeSpan?> _timeout = ValueOptions.Seconds("--timeout", "limit on the whole watch (exit 4)");
    private readonly Option<TimeSpan?> _connectTimeout = ClientTimeouts.CreateConnectOption();

    /// <summary>Creates the subcommand; it writes to <paramref name="console"/>.</summary>
    public EventsCommand(ToolConsole console)
        : base("events", "print events as JSON lines")
    {
        AddAll([_address], [_name, _count, _timeout, _connectTimeout]);
        SetAction((result, cancellationToken) => RunAsync(result, console.Output, console.Error, cancellationToken));
    }

    public override string Usage => "aqmp events ADDRESS [--name NAME]... [--count N] [--timeout SECONDS] [--connect-timeout SECONDS]";

    public override string Details => """
        Connects to the QMP server at ADDRESS and prints each event as one line of JSON, as the
        server sent it. --name (repeatable) keeps only the events with those names; --count
        stops after N events. Ends with exit 0 when the count is reached, the server closes the
        connection, or on Ctrl-C; exits 2 if the connection fails, 3 if there is no connection
        or greeting within --connect-timeout (default 5 s), 4 when --timeout elapses first (with
        or without --count), and 130 on Ctrl-C before the connection was made.
        """;

    private async Task<int> RunAsync(ParseResult result, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var count = result.GetValue(_count);
        var timeout = result.GetValue(_timeout);
        var names = result.GetValue(_name) ?? [];
        var address = result.GetRequiredValue(_address);
        await using var client = new QmpClient(ClientTimeouts.Apply(result.GetValue(_connectTimeout), new QmpClientOptions { EventOverflowPolicy = QmpEventOverflowPolicy.EndListener, EventListenerCapacity = 65536 }));
        using var listener = client.Listen(names);
        using var deadline = timeout is { } limit ? new CancellationTokenSource(limit) : new CancellationTokenSource();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            await client.ConnectAsync(address, cancellationToken: stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            await error.WriteLineAsync(cancellationToken.IsCancellationRequested
                ? $"aqmp: interrupted while connecting to {address} (no QMP greeting yet)"
                : $"aqmp: not connected to {address} within {ClientTimeouts.Describe(timeout!.Value)} (--timeout)").ConfigureAwait(false);
            return cancellationToken.IsCancellationRequested ? ExitCodes.Interrupted : ExitCodes.TimedOut;
        }

        var printed = 0;
        try
        {
            await foreach (var qmpEvent in listener.ReadAllAsync(stop.Token).ConfigureAwait(false))
            {
                await output.WriteLineAsync(qmpEvent.ToString()).ConfigureAwait(false);
                await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (++printed == count)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl-C: a normal way to stop watching.
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            await error.WriteLineAsync(count is { } wanted
                ? $"aqmp: {printed} of {wanted} events within {ClientTimeouts.Describe(timeout!.Value)} (--timeout)"
                : $"aqmp: --timeout: {ClientTimeouts.Describe(timeout!.Value)} elapsed after {printed} events").ConfigureAwait(false);
            return ExitCodes.TimedOut;
        }
        catch (EndOfStreamException)
        {
            // The server closed the connection: the stream of events is over.
        }

        return ExitCodes.Success;
    }
}
