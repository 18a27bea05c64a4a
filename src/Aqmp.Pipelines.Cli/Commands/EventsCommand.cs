using Aqmp.Pipelines.Qmp.Client;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp events ADDRESS [--name NAME]... [--count N]</c>: prints events as JSON lines.</summary>
internal static class EventsCommand
{
    public const string Usage = "aqmp events ADDRESS [--name NAME]... [--count N] [--timeout SECONDS] [--connect-timeout SECONDS]";

    public const string Help = $"""
        usage: {Usage}

        Connects to the QMP server at ADDRESS and prints each event as one line of JSON, as the
        server sent it. --name (repeatable) keeps only the events with those names; --count
        stops after N events. Ends with exit 0 when the count is reached, the server closes the
        connection, or on Ctrl-C; exits 2 if the connection fails, 3 if there is no connection
        or greeting within --connect-timeout (default 5 s), 4 when --timeout elapses first (with
        or without --count), and 130 on Ctrl-C before the connection was made.
        """;

    public static async Task<int> RunAsync(CliArguments args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        args.ExpectPositional(1, 1, Usage);
        var count = args.PositiveInteger("count");
        var timeout = args.PositiveSeconds(ClientTimeouts.Option);
        var names = args.All("name").ToArray();
        var address = args.Positional[0];
        await using var client = new QmpClient(ClientTimeouts.Apply(args, new QmpClientOptions { EventOverflowPolicy = QmpEventOverflowPolicy.EndListener, EventListenerCapacity = 65536 }));
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
