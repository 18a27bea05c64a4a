using System.Runtime.ExceptionServices;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// Ending a session: DisconnectAsync (upper half) and the teardown it waits for (bottom half).
public abstract partial class PipeProtocol<TMessage>
{
    /// <summary>
    /// Disconnects and waits until every task of the session has stopped, then returns the
    /// runstate to <see cref="Runstate.Idle"/>. Idempotent and callable in any runstate.
    /// </summary>
    /// <remarks>
    /// <list type="bullet">
    /// <item><b>Running:</b> every message queued before the call is written and flushed and
    /// reaches the peer; then both loops stop and the transport is closed gracefully.</item>
    /// <item><b>Connecting:</b> an attempt under way is cancelled (it raises
    /// <see cref="OperationCanceledException"/> to its caller) and rolls itself back; a listener
    /// waiting for <see cref="AcceptAsync"/> is closed.</item>
    /// <item><b>Disconnecting:</b> the session ended by itself (or another disconnect is under way):
    /// this waits for it, then returns to <see cref="Runstate.Idle"/>.</item>
    /// <item><b>Idle:</b> passes through <see cref="Runstate.Disconnecting"/> back to <see cref="Runstate.Idle"/>.</item>
    /// </list>
    /// If an error ended the session (the peer closed: <see cref="EndOfStreamException"/>; a loop,
    /// the framer, <see cref="OnMessageAsync"/> or the final flush failed), it is raised here, once:
    /// the first such error, its root cause. Concurrent callers of the same disconnect all see it.
    /// </remarks>
    /// <param name="cancellationToken">
    /// Abandons the graceful drain: queued messages not yet sent are discarded (and logged), the
    /// transport is aborted, the runstate still returns to <see cref="Runstate.Idle"/>, and then
    /// <see cref="OperationCanceledException"/> is raised (unless an earlier root cause is raised instead).
    /// </param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Idle"/>.</returns>
    /// <exception cref="Exception">The root cause that ended the session, re-raised as it was.</exception>
    /// <exception cref="OperationCanceledException">
    /// <paramref name="cancellationToken"/> cut the drain short; or the call was made from the
    /// read loop (<see cref="OnMessageAsync"/>, or work it started), which the teardown must stop:
    /// the disconnect then proceeds once the hook returns, and a later call from outside the loop
    /// returns the runstate to <see cref="Runstate.Idle"/> and reports the outcome.
    /// </exception>
    public async Task DisconnectAsync(CancellationToken cancellationToken = default)
    {
        PipeProtocolLog.DisconnectCalled(Logger);
        DisconnectOperation operation;
        while (true)
        {
            SessionStart? attempt = null;
            lock (_gate)
            {
                if (_runstate == Runstate.Connecting && _start is not null)
                {
                    attempt = _start;
                }
                else
                {
                    operation = ScheduleDisconnect();
                    break;
                }
            }

            // Cancel outside the gate: cancellation callbacks may resume the attempt inline.
            attempt.Abort.Cancel();
            await attempt.Finished.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            lock (_gate)
            {
                if (_runstate == Runstate.Idle)
                {
                    return;
                }
            }
        }

        using (cancellationToken.Register(static state => ((DisconnectOperation)state!).AbortDrain(), operation))
        {
            if (ReferenceEquals(ReadLoopOwner.Value, this))
            {
                // Called from OnMessageAsync: the teardown waits for the read loop, so waiting for
                // the teardown here would deadlock. As in the seed, where the teardown cancels the
                // reader task running disconnect(), this call ends with OperationCanceledException
                // once the teardown cancels the loop.
                await operation.Teardown.WaitAsync(operation.SessionAbortToken).ConfigureAwait(false);
            }

            await operation.Teardown.ConfigureAwait(false);
        }

        lock (_gate)
        {
            // The first waiter to wake finishes the disconnect (the seed's _cleanup); the others
            // only report its outcome. A new session may already be starting by then.
            if (_disconnect == operation)
            {
                ResetSession();
                SetState(Runstate.Idle);
            }
        }

        if (operation.RootCause is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }

        if (operation.DrainAborted)
        {
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>
    /// Called once per session by the teardown, after both loops have stopped and the transport
    /// is closed, before the runstate can return to <see cref="Runstate.Idle"/>: the place to fail
    /// requests still waiting for replies. The base does nothing.
    /// </summary>
    /// <param name="rootCause">The error that ended the session, or <see langword="null"/> for a clean disconnect.</param>
    /// <returns>A task that completes when the hook is done.</returns>
    /// <remarks>Runs in the bottom half. An exception from it is logged and becomes the root cause if there was none.</remarks>
    protected virtual ValueTask OnSessionEndedAsync(Exception? rootCause) => ValueTask.CompletedTask;

    /// <summary>
    /// Starts the teardown unless it is already under way; idempotent (the seed's
    /// <c>_schedule_disconnect</c>). Used by <see cref="DisconnectAsync"/> and by a failing loop.
    /// Call under the gate.
    /// </summary>
    private DisconnectOperation ScheduleDisconnect()
    {
        if (_disconnect is null)
        {
            SetState(Runstate.Disconnecting);
            var operation = _disconnect = new DisconnectOperation(_sessionAbort?.Token ?? CancellationToken.None);
            operation.Teardown = Task.Run(() => TeardownAsync(operation));
        }

        return _disconnect;
    }

    /// <summary>
    /// Stops the session (the seed's <c>_bh_disconnect</c>): drain and flush the queue unless
    /// the session already failed, stop both loops, close the transport, run the end hook.
    /// Never faults; errors become the operation's root cause.
    /// </summary>
    private async Task TeardownAsync(DisconnectOperation operation)
    {
        Task? reader;
        Task? writer;
        TransportConnection? connection;
        SocketListener? listener;
        System.Threading.Channels.Channel<TMessage>? outgoing;
        CancellationTokenSource? sessionAbort;
        lock (_gate)
        {
            reader = _readerTask;
            writer = _writerTask;
            connection = _connection;
            listener = _listener;
            outgoing = _outgoing;
            sessionAbort = _sessionAbort;
        }

        var errorPathway = Volatile.Read(ref _rootCause) is not null;
        if (!errorPathway && writer is not null && outgoing is not null && connection is not null)
        {
            PipeProtocolLog.Draining(Logger);
            outgoing.Writer.TryComplete();
            var output = connection.Pipe.Output;
            using (operation.DrainAbortToken.Register(output.CancelPendingFlush))
            {
                await writer.ConfigureAwait(false);
            }

            errorPathway = Volatile.Read(ref _rootCause) is not null || operation.DrainAborted;
        }

        // Stop both loops; their tasks never fault.
        CancelQuietly(sessionAbort);
        outgoing?.Writer.TryComplete();
        if (connection is not null && reader is not null)
        {
            connection.Pipe.Input.CancelPendingRead();
            connection.Pipe.Output.CancelPendingFlush();
        }

        await Task.WhenAll(reader ?? Task.CompletedTask, writer ?? Task.CompletedTask).ConfigureAwait(false);
        listener?.Dispose();
        var dropped = 0;
        while (outgoing is not null && outgoing.Reader.TryRead(out _))
        {
            dropped++;
        }

        if (dropped > 0)
        {
            PipeProtocolLog.DroppedOutbound(Logger, dropped);
        }

        await CloseTransportAsync(connection, errorPathway, operation).ConfigureAwait(false);
        if (reader is not null)
        {
            try
            {
                await OnSessionEndedAsync(Volatile.Read(ref _rootCause)).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                PipeProtocolLog.SessionEndedHookFailed(Logger, PipeProtocolLog.Summarize(ex), ex);
                RecordRootCause(ex);
            }
        }

        operation.RootCause = Volatile.Read(ref _rootCause);
    }

    private async Task CloseTransportAsync(TransportConnection? connection, bool errorPathway, DisconnectOperation operation)
    {
        if (connection is null)
        {
            return;
        }

        if (errorPathway)
        {
            connection.Abort();
            return;
        }

        try
        {
            await connection.CloseAsync(operation.DrainAbortToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (operation.DrainAborted)
        {
            // The caller gave up on the drain; CloseAsync released the connection regardless.
        }
        catch (Exception ex)
        {
            // A brand-new error: the session was healthy until the final flush or close failed.
            PipeProtocolLog.CloseFailed(Logger, PipeProtocolLog.Summarize(ex), ex);
            RecordRootCause(ex);
        }
    }

    private static void CancelQuietly(CancellationTokenSource? source)
    {
        try
        {
            source?.Cancel();
        }
        catch (AggregateException)
        {
            // A callback registered by user code threw; the loops still see the cancellation.
        }
    }

    /// <summary>One teardown: its task, its outcome, and how a caller can cut its drain short.</summary>
    private sealed class DisconnectOperation(CancellationToken sessionAbortToken)
    {
        private readonly CancellationTokenSource _drainAbort = new();

        /// <summary>The session's token, which the teardown cancels to stop the loops.</summary>
        public CancellationToken SessionAbortToken { get; } = sessionAbortToken;

        public Task Teardown { get; set; } = Task.CompletedTask;

        public Exception? RootCause { get; set; }

        public CancellationToken DrainAbortToken => _drainAbort.Token;

        public bool DrainAborted => _drainAbort.IsCancellationRequested;

        public void AbortDrain() => _drainAbort.Cancel();
    }
}
