using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Server;

// Graceful shutdown: stop accepting, drop handshakes, ask sessions to disconnect, abort at the deadline.
public sealed partial class PipeProtocolServer<TMessage>
{
    private readonly Lock _shutdownGate = new();
    private Task<ServerShutdownResult>? _shutdown;
    private ShutdownCounts? _shutdownCounts;

    /// <summary>
    /// Shuts the server down gracefully: stops accepting on every endpoint (closing the listeners
    /// and removing Unix socket files), drops connections still in their handshake, asks every
    /// running session to disconnect (each flushes what was sent to it), waits up to
    /// <see cref="PipeProtocolServerOptions.ShutdownTimeout"/> for them, then aborts the drains of
    /// those still ending. Idempotent: later and concurrent calls return the first call's result.
    /// </summary>
    /// <param name="cancellationToken">Ends the wait early: the remaining drains are aborted at once.</param>
    /// <returns>How the sessions ended: drained, aborted at the deadline, handshakes cancelled.</returns>
    /// <remarks>
    /// Every connection's <see cref="SessionEnded"/> has been raised when the task completes, except
    /// for a session whose own hook ignores cancellation and still holds its teardown: it is counted
    /// as aborted and finishes in the background.
    /// </remarks>
    public Task<ServerShutdownResult> ShutdownAsync(CancellationToken cancellationToken = default)
    {
        lock (_shutdownGate)
        {
            return _shutdown ??= ShutdownCoreAsync(cancellationToken);
        }
    }

    private async Task<ServerShutdownResult> ShutdownCoreAsync(CancellationToken cancellationToken)
    {
        var counts = new ShutdownCounts();
        Volatile.Write(ref _shutdownCounts, counts);
        Task[] loops;
        lock (_listenGate)
        {
            _stopAccepting.Cancel();
            foreach (var (listener, _) in _listeners)
            {
                listener.Dispose();
            }

            loops = [.. _listeners.Select(listener => listener.Loop)];
        }

        // Once the loops have ended no session is added: every one is in the snapshot below, or
        // sees the shutdown when its handshake completes.
        await Task.WhenAll(loops).ConfigureAwait(false);
        await _stopHandshakes.CancelAsync().ConfigureAwait(false);
        var sessions = _sessions.Values.ToArray();
        foreach (var session in sessions)
        {
            if (session.IsRunning)
            {
                session.Request(SessionEndReason.Graceful);
            }
        }

        if (Volatile.Read(ref _unfinished) == 0)
        {
            _allFinished.TrySetResult();
        }

        var served = _allFinished.Task;
        try
        {
            await served.WaitAsync(Options.ShutdownTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            await _abortSessions.CancelAsync().ConfigureAwait(false);
            await served.ConfigureAwait(false);
        }

        await _idleSweep.ConfigureAwait(false);
        var result = counts.ToResult();
        ServerLog.ShutDown(_logger, result.ToString());
        _metrics.Dispose();
        return result;
    }
}
