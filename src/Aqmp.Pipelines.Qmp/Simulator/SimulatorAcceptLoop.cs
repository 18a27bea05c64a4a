using Aqmp.Pipelines.Transports;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The simulator's accept loop: accepts one client, serves it to the end, and accepts the next,
/// until it is stopped or a served client asks it to stop (<c>quit</c>). Transient accept errors
/// are retried as <see cref="AcceptLoop{TConnection}"/> does.
/// </summary>
internal sealed class SimulatorAcceptLoop(
    Func<CancellationToken, ValueTask<TransportConnection>> accept,
    Func<TransportConnection, CancellationToken, Task<bool>> serve,
    ILogger logger)
{
    private readonly AcceptLoop<TransportConnection> _loop = new(accept, (connection, token) => new ValueTask<bool>(serve(connection, token)), logger);

    /// <summary>Accepts and serves clients until <paramref name="stop"/> fires or a served client ends the loop.</summary>
    /// <param name="stop">Stops the loop: a pending accept, a backoff and the current client's service end.</param>
    /// <returns>
    /// <see cref="QmpSimulatorStopReason.Stopped"/> once <paramref name="stop"/> fired, or
    /// <see cref="QmpSimulatorStopReason.Quit"/> when the serve function returned <see langword="false"/>.
    /// </returns>
    /// <exception cref="Exception">Anything unexpected that accepting or serving threw while not stopping.</exception>
    public async Task<QmpSimulatorStopReason> RunAsync(CancellationToken stop)
        => await _loop.RunAsync(stop).ConfigureAwait(false) ? QmpSimulatorStopReason.Stopped : QmpSimulatorStopReason.Quit;
}
