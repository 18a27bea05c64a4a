using System.Net.Sockets;
using Aqmp.Pipelines.Transports;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The simulator's accept loop: accepts one client, serves it to the end, and accepts the next,
/// until it is stopped or a served client asks it to stop (<c>quit</c>).
/// </summary>
/// <remarks>
/// A transient accept error (out of descriptors or memory, a client that aborted before being
/// accepted) is logged and retried after a backoff that starts at <see cref="InitialBackoff"/>,
/// doubles up to <see cref="MaximumBackoff"/>, and starts over after a successful accept; stopping
/// interrupts the wait. Any other failure ends <see cref="RunAsync"/> with that exception.
/// </remarks>
internal sealed class SimulatorAcceptLoop(
    Func<CancellationToken, ValueTask<TransportConnection>> accept,
    Func<TransportConnection, CancellationToken, Task<bool>> serve,
    ILogger logger)
{
    /// <summary>The wait after the first transient accept error in a row.</summary>
    public static readonly TimeSpan InitialBackoff = TimeSpan.FromMilliseconds(10);

    /// <summary>The longest wait between retries.</summary>
    public static readonly TimeSpan MaximumBackoff = TimeSpan.FromSeconds(1);

    /// <summary>Whether an accept error is about the moment (resources, an aborted client), not the listener.</summary>
    public static bool IsTransient(SocketException error)
        => error.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.ConnectionAborted
            or SocketError.ConnectionReset or SocketError.NoBufferSpaceAvailable or SocketError.Interrupted
            || error.NativeErrorCode is 12 /* ENOMEM */ or 23 /* ENFILE */ or 24 /* EMFILE */ or 71 /* EPROTO */
                or 103 /* ECONNABORTED */ or 105 /* ENOBUFS */;

    /// <summary>Accepts and serves clients until <paramref name="stop"/> fires or a served client ends the loop.</summary>
    /// <param name="stop">Stops the loop: a pending accept, a backoff and the current client's service end.</param>
    /// <returns>
    /// <see cref="QmpSimulatorStopReason.Stopped"/> once <paramref name="stop"/> fired, or
    /// <see cref="QmpSimulatorStopReason.Quit"/> when the serve function returned <see langword="false"/>.
    /// </returns>
    /// <exception cref="Exception">Anything unexpected that accepting or serving threw while not stopping.</exception>
    public async Task<QmpSimulatorStopReason> RunAsync(CancellationToken stop)
    {
        var backoff = InitialBackoff;
        while (!stop.IsCancellationRequested)
        {
            TransportConnection connection;
            try
            {
                connection = await accept(stop).ConfigureAwait(false);
            }
            catch (Exception ex) when (stop.IsCancellationRequested && ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                // Stopping disposed the listener or cancelled the accept.
                break;
            }
            catch (SocketException ex) when (IsTransient(ex))
            {
                QmpSimulatorLog.AcceptFailedTransiently(logger, ex.Message, backoff.TotalMilliseconds, ex);
                try
                {
                    await Task.Delay(backoff, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaximumBackoff.Ticks));
                continue;
            }

            backoff = InitialBackoff;
            if (!await serve(connection, stop).ConfigureAwait(false))
            {
                return QmpSimulatorStopReason.Quit;
            }
        }

        return QmpSimulatorStopReason.Stopped;
    }
}
