using Aqmp.Pipelines.Qmp.Client;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp events ADDRESS [--name NAME]... [--count N]</c>: prints events as JSON lines.</summary>
internal static class EventsCommand
{
    public const string Usage = "aqmp events ADDRESS [--name NAME]... [--count N]";

    public const string Help = $"""
        usage: {Usage}

        Connects to the QMP server at ADDRESS and prints each event as one line of JSON, as the
        server sent it. --name (repeatable) keeps only the events with those names; --count
        stops after N events. Ends with exit 0 when the count is reached, the server closes the
        connection, or on Ctrl-C; exits 2 if the connection fails.
        """;

    public static async Task<int> RunAsync(CliArguments args, TextWriter output, CancellationToken cancellationToken)
    {
        args.ExpectPositional(1, 1, Usage);
        var count = args.PositiveInteger("count");
        var names = args.All("name").ToArray();
        await using var client = new QmpClient(new QmpClientOptions { EventOverflowPolicy = QmpEventOverflowPolicy.EndListener, EventListenerCapacity = 65536 });
        using var listener = client.Listen(names);
        await client.ConnectAsync(args.Positional[0], cancellationToken: cancellationToken).ConfigureAwait(false);
        var printed = 0;
        try
        {
            await foreach (var qmpEvent in listener.ReadAllAsync(cancellationToken).ConfigureAwait(false))
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
        catch (EndOfStreamException)
        {
            // The server closed the connection: the stream of events is over.
        }

        return ExitCodes.Success;
    }
}
