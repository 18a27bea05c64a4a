using System.CommandLine;
using Aqmp.Pipelines.Cli.CommandLine;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp serve ADDRESS</c>: runs the QMP simulator until interrupted or told to quit.</summary>
internal sealed class ServeCommand : ToolCommand
{
    private readonly Argument<string> _address = new("ADDRESS") { Description = "where to listen: unix:PATH, a path containing '/', HOST:PORT" };
    private readonly Option<int?> _negotiationTimeout = ValueOptions.PositiveInteger(
        "--negotiation-timeout",
        "SECONDS",
        "disconnect a client that has not sent qmp_capabilities within SECONDS of connecting, so that the next one is served (default 5)");

    private readonly Option<int?> _maximumClients = ValueOptions.PositiveInteger(
        "--max-clients",
        "N",
        "serve up to N clients at once, all monitors of one simulated machine: each receives every event (default 1, as one QEMU monitor)");

    /// <summary>Creates the subcommand; it writes to <paramref name="console"/>.</summary>
    public ServeCommand(ToolConsole console)
        : base("serve", "run the QMP simulator")
    {
        Add(_address);
        Add(_negotiationTimeout);
        Add(_maximumClients);
        SetAction((result, cancellationToken) => RunAsync(result, console.Output, console.Error, cancellationToken));
    }

    public override string Usage => "aqmp serve [--negotiation-timeout SECONDS] [--max-clients N] ADDRESS";

    public override string Details => """
        Runs the built-in QMP simulator on ADDRESS (unix:PATH, a path containing '/', HOST:PORT)
        until Ctrl-C or until a client sends 'quit'. It knows every command of QEMU 7.2's schema and
        checks arguments as QEMU does; it runs qmp_capabilities, query-status, stop, cont,
        system_reset, system_powerdown, quit, query-version, query-name, query-uuid, query-kvm,
        query-commands, query-qmp-schema and human-monitor-command (info, help) like QEMU's
        '-M none' machine, and answers the schema's other commands with a GenericError.
        A socket file at PATH that no server answers on (left by a server that did not stop
        cleanly) is replaced; one a server answers on, or a file that is not a socket, is reported
        and left alone. Like QEMU's monitor it serves one client at a time; with --max-clients N it
        serves N at once, as QEMU serves several -qmp monitors: a 'stop' from one produces the STOP
        event on every client that has negotiated, and 'quit' from one disconnects them all. Once a
        client has negotiated oob, exec-oob commands overtake its in-band ones.

        Passing accept errors (out of descriptors, a client that gave up) are retried. It exits 0
        when stopped; 2 when it cannot listen on ADDRESS or stops accepting clients for another reason.
        """;

    private async Task<int> RunAsync(ParseResult result, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var options = QmpSimulatorOptions.Default with { ReplaceStaleSocket = true };
        if (result.GetValue(_negotiationTimeout) is { } seconds)
        {
            options = options with { NegotiationTimeout = TimeSpan.FromSeconds(seconds) };
        }

        if (result.GetValue(_maximumClients) is { } clients)
        {
            options = options with { MaximumClients = clients };
        }

        await using var simulator = new QmpSimulator(options);
        var endPoint = await simulator.StartAsync(result.GetRequiredValue(_address), cancellationToken).ConfigureAwait(false);
        await output.WriteLineAsync($"serving the QMP simulator on {AddressParser.Format(endPoint)} (Ctrl-C to stop)").ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return await ReportStopAsync(simulator.Completion, output, error, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Waits for the simulator to stop and says why: "simulator stopped: a client sent 'quit'" after
    /// quit, "simulator stopped" when stopped or interrupted (exit 0); when accepting failed,
    /// "aqmp: error: ..." on <paramref name="error"/> and exit 2.
    /// </summary>
    internal static async Task<int> ReportStopAsync(Task<QmpSimulatorStopReason> completion, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        QmpSimulatorStopReason reason;
        try
        {
            reason = await completion.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            reason = QmpSimulatorStopReason.Stopped;
        }
        catch (Exception ex)
        {
            await error.WriteLineAsync($"aqmp: error: the simulator stopped accepting clients: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.ConnectionFailed;
        }

        await output.WriteLineAsync(reason == QmpSimulatorStopReason.Quit ? "simulator stopped: a client sent 'quit'" : "simulator stopped").ConfigureAwait(false);
        return ExitCodes.Success;
    }
}
