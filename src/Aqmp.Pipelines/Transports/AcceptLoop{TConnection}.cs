using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// Accepts connections one after another and hands each to a handler, until stopped or the handler
/// asks it to end; transient accept errors never end it.
/// </summary>
/// <remarks>
/// A transient accept error (see <see cref="AcceptLoop.IsTransient"/>) is logged, reported to
/// <see cref="TransientError"/>, and retried after a backoff that starts at
/// <see cref="AcceptLoop.InitialBackoff"/>, doubles up to <see cref="AcceptLoop.MaximumBackoff"/>,
/// and starts over after a successful accept; stopping interrupts the wait. Any other failure of
/// the accept function or the handler ends <see cref="RunAsync"/> with that exception.
/// </remarks>
/// <typeparam name="TConnection">What the accept function yields: a socket, a connection.</typeparam>
/// <param name="accept">Waits for and returns the next connection; cancelled when the loop stops.</param>
/// <param name="handle">
/// Takes one connection (and its ownership); returns <see langword="false"/> to end the loop. The
/// next accept waits for it: to serve connections concurrently, start the work and return.
/// </param>
/// <param name="logger">Where transient errors are logged; none when null.</param>
public sealed class AcceptLoop<TConnection>(
    Func<CancellationToken, ValueTask<TConnection>> accept,
    Func<TConnection, CancellationToken, ValueTask<bool>> handle,
    ILogger? logger = null)
{
    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    /// <summary>
    /// Called on the loop's flow with each transient accept error and the wait before the retry.
    /// Must be quick and must not throw.
    /// </summary>
    public Action<SocketException, TimeSpan>? TransientError { get; init; }

    /// <summary>Accepts and hands over connections until <paramref name="stop"/> fires or the handler ends the loop.</summary>
    /// <param name="stop">Stops the loop: a pending accept, a backoff and a running handler are cancelled.</param>
    /// <returns>
    /// <see langword="true"/> once <paramref name="stop"/> fired (an accept that then failed with
    /// <see cref="OperationCanceledException"/>, <see cref="ObjectDisposedException"/> or a
    /// <see cref="SocketException"/>, as a disposed listener's does, counts as stopped), or
    /// <see langword="false"/> when the handler returned <see langword="false"/>.
    /// </returns>
    /// <exception cref="Exception">Whatever non-transient error accepting or handling raised while not stopping.</exception>
    public async Task<bool> RunAsync(CancellationToken stop)
    {
        var backoff = AcceptLoop.InitialBackoff;
        while (!stop.IsCancellationRequested)
        {
            TConnection connection;
            try
            {
                connection = await accept(stop).ConfigureAwait(false);
            }
            catch (Exception ex) when (stop.IsCancellationRequested && ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                // Stopping disposed the listener or cancelled the accept.
                break;
            }
            catch (SocketException ex) when (AcceptLoop.IsTransient(ex))
            {
                AcceptLoop.AcceptFailedTransiently(_logger, ex.Message, backoff.TotalMilliseconds, ex);
                TransientError?.Invoke(ex, backoff);
                try
                {
                    await Task.Delay(backoff, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }

                backoff = AcceptLoop.Next(backoff);
                continue;
            }

            backoff = AcceptLoop.InitialBackoff;
            if (!await handle(connection, stop).ConfigureAwait(false))
            {
                return false;
            }
        }

        return true;
    }
}
