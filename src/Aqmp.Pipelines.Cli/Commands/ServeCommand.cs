using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp serve ADDRESS</c>: runs the QMP simulator until interrupted or told to quit.</summary>
internal static class ServeCommand
{
    public const string Usage = "aqmp serve ADDRESS";

    public const string Help = $"""
        usage: {Usage}

        Runs the built-in QMP simulator on ADDRESS (unix:PATH, a path containing '/', HOST:PORT)
        until Ctrl-C or until a client sends 'quit'. It answers query-version, query-status,
        query-commands, stop, cont and quit like QEMU, and unknown commands with CommandNotFound.
        """;

    public static async Task<int> RunAsync(CliArguments args, TextWriter output, CancellationToken cancellationToken)
    {
        args.ExpectPositional(1, 1, Usage);
        await using var simulator = new QmpSimulator();
        var endPoint = await simulator.StartAsync(args.Positional[0], cancellationToken).ConfigureAwait(false);
        await output.WriteLineAsync($"serving the QMP simulator on {AddressParser.Format(endPoint)} (Ctrl-C to stop)").ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await simulator.Completion.WaitAsync(cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync("simulator stopped: a client sent 'quit'").ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await output.WriteLineAsync("simulator stopped").ConfigureAwait(false);
        }

        return ExitCodes.Success;
    }
}
