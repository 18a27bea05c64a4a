using System.Runtime.ExceptionServices;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// Ending a session: DisconnectAsync (upper half) and the teardown it waits for (bottom half).
public abstract partial class PipeProtocol<TMessage>
{
    /// <summary>How long a cancelled DisconnectAsync still waits for the aborted teardown to reach Idle.</summary>
    private static readonly TimeSpan AbandonedDrainGrace = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Disconnects and waits until every task of the session has stopped, then returns the
    /// runstate to <see cref="Runstate.Idle"/>. Idempotent and callable in any runstate.
    /// </summary>
    /// <remarks>
    /// <list type="bullet">
    /// <item><b>Running:</b> every message sent before the call is flushed and
    /// reaches the peer; then both loops stop and the transport is closed gracefully.</item>
    /// <item><b>Connecting:</b> an attempt under way is cancelled (it raises
    /// <see cref="OperationCanceledException"/> to its caller) and rolls itself back; a listener
    /// waiting for <see cref="AcceptAsync"/> is closed.</item>
    /// <item><b>Disconnecting:</b> the session ended by itself (or another disconnect is under way):
    /// this waits for it, then returns to <see cref="Runstate.Idle"/>.</item>
    /// <item><b>Idle:</b> passes through <see cref="Runstate.Disconnecting"/> back to <see cref="Runstate.Idle"/>.</item>
    /// </list>
    /// <para>
    /// If an error ended the session (the peer closed: <see cref="EndOfStreamException"/>; a loop,
    /// the framer, <see cref="OnMessageAsync"/> or the final flush failed), it is raised here, once:
    /// the first such error, its root cause. Concurrent callers of the same disconnect all see it.
    /// </para>
    /// <para>
    /// Called from the session's own code it cannot wait for itself: from
    /// <see cref="EstablishSessionAsync"/> it cancels the attempt and raises
    /// <see cref="OperationCanceledException"/>; from <see cref="OnMessageAsync"/> it starts the
    /// disconnect and raises <see cref="OperationCanceledException"/> once the teardown stops the
    /// read loop (as QEMU aqmp's reader task is cancelled); from <see cref="OnSessionEndedAsync"/> it
    /// returns at once. In each case the runstate reaches <see cref="Runstate.Idle"/> by itself
    /// as soon as the hook has returned.
    /// </para>
    /// </remarks>
    /// <param name="cancellationToken">
    /// Abandons the graceful drain: messages not yet flushed are discarded (and logged), the
    /// transport is aborted, the runstate returns to <see cref="Runstate.Idle"/>, and then
    /// <see cref="OperationCanceledException"/> is raised (unless an earlier root cause is raised
    /// instead). If a hook ignores its own token and keeps the teardown waiting, the call raises
    /// <see cref="OperationCanceledException"/> while still <see cref="Runstate.Disconnecting"/>;
    /// the runstate becomes <see cref="Runstate.Idle"/> by itself when the hook returns.
    /// </param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Idle"/>.</returns>
    /// <exception cref="Exception">The root cause that ended the session, re-raised as it was.</exception>
    /// <exception cref="OperationCanceledException">
    /// <paramref name="cancellationToken"/> cut the drain short, or the call came from
    /// <see cref="EstablishSessionAsync"/> or <see cref="OnMessageAsync"/>.
    /// </exception>
    public async Task DisconnectAsync(CancellationToken cancellationToken = default)
    {
        PipeProtocolLog.DisconnectCalled(Logger);
        if (SessionFlow.Is(this, SessionFlowRole.Handshake))
        {
            SessionStart? current;
            lock (_gate)
            {
                current = _start;
            }

            current?.Abort.Cancel();
            throw new OperationCanceledException("DisconnectAsync was called from EstablishSessionAsync: the connection attempt is cancelled.");
        }

        var fromTeardown = SessionFlow.Is(this, SessionFlowRole.Teardown);
        DisconnectOperation operation;
        while (true)
        {
            SessionStart? attempt = null;
            lock (_gate)
            {
                if (_start is not null && !fromTeardown)
                {
                    // An attempt is connecting or rolling back: it ends the session itself.
                    attempt = _start;
                }
                else
                {
                    operation = ScheduleDisconnect();
                    operation.Requested = true;
                    if (operation.TeardownDone)
                    {
                        Finish(operation);
                    }

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

        if (fromTeardown)
        {
            return;
        }

        using (cancellationToken.Register(static state => ((DisconnectOperation)state!).AbortDrain(), operation))
        {
            if (SessionFlow.Is(this, SessionFlowRole.ReadLoop))
            {
                // The teardown must stop this very loop before it can end: raise once it does.
                await operation.Finished.Task.WaitAsync(operation.Resources.SessionAbortToken).ConfigureAwait(false);
            }

            await WaitUntilFinishedAsync(operation, cancellationToken).ConfigureAwait(false);
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
    /// Starts a graceful disconnect for <see cref="MessageContext{TMessage}.EndSession"/>: as if the
    /// application had called <see cref="DisconnectAsync"/>, so the runstate returns to
    /// <see cref="Runstate.Idle"/> by itself once the teardown is done. No effect unless
    /// <see cref="Runstate.Running"/> with no disconnect under way.
    /// </summary>
    /// <param name="session">The context's own session: a later one is never ended.</param>
    internal void RequestDisconnectFromHandler(OutboundWriter<TMessage> session)
    {
        lock (_gate)
        {
            if (_outbound != session || _runstate != Runstate.Running || _disconnect is not null)
            {
                return;
            }

            ScheduleDisconnect().Requested = true;
        }
    }

    /// <summary>
    /// Called once per session that reached <see cref="Runstate.Running"/>, by the teardown, after
    /// both loops have stopped and the transport is closed, before the runstate can return to
    /// <see cref="Runstate.Idle"/>: the place to fail requests still waiting for replies. The base
    /// does nothing.
    /// </summary>
    /// <param name="rootCause">The error that ended the session, or <see langword="null"/> for a clean disconnect.</param>
    /// <returns>A task that completes when the hook is done.</returns>
    /// <remarks>Runs in the bottom half. An exception from it is logged and becomes the root cause if there was none.</remarks>
    protected virtual ValueTask OnSessionEndedAsync(Exception? rootCause) => ValueTask.CompletedTask;

    private static async Task WaitUntilFinishedAsync(DisconnectOperation operation, CancellationToken cancellationToken)
    {
        try
        {
            await operation.Finished.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The drain is aborted; the teardown now only releases. Let it reach Idle unless a hook
            // that ignores its token holds it up.
            await Task.WhenAny(operation.Finished.Task, Task.Delay(AbandonedDrainGrace, CancellationToken.None)).ConfigureAwait(false);
            if (!operation.Finished.Task.IsCompleted)
            {
                throw;
            }
        }
    }

    /// <summary>
    /// Starts the teardown unless it is already under way; idempotent (QEMU's aqmp's
    /// <c>_schedule_disconnect</c>). Used by <see cref="DisconnectAsync"/> and by a failing loop.
    /// The teardown works on the resources of the session as they are now. Call under the gate.
    /// </summary>
    /// <param name="outputFailed">
    /// A failed write is what ends the session: the teardown first lets the read loop deliver what
    /// had arrived, up to <see cref="PipeProtocolOptions.InputDrainTimeout"/> (input first).
    /// </param>
    private DisconnectOperation ScheduleDisconnect(bool outputFailed = false)
    {
        if (_disconnect is null)
        {
            SetState(Runstate.Disconnecting);
            Volatile.Write(ref _runningOutbound, null);
            _outbound?.Close();
            var resources = new SessionResources(_readerTask, _connection, _listener, _outbound, _sessionAbort);
            var operation = _disconnect = new DisconnectOperation(resources) { OutputFailed = outputFailed };
            operation.Teardown = Task.Run(() => TeardownAsync(operation));
        }

        return _disconnect;
    }

    /// <summary>
    /// Ends the disconnect (QEMU aqmp's <c>_cleanup</c>): forgets the session and returns to
    /// <see cref="Runstate.Idle"/>, once the teardown is done and a disconnect was requested.
    /// Call under the gate.
    /// </summary>
    private void Finish(DisconnectOperation operation)
    {
        if (_disconnect == operation)
        {
            ResetSession();
            SetState(Runstate.Idle);
        }

        operation.Finished.TrySetResult();
    }

    /// <summary>
    /// Stops the session (QEMU aqmp's <c>_bh_disconnect</c>): flush what senders framed unless
    /// the session already failed, stop both loops, close the transport, run the end hook.
    /// Never faults; errors become the operation's root cause.
    /// </summary>
    private async Task TeardownAsync(DisconnectOperation operation)
    {
        SessionFlow.Enter(this, SessionFlowRole.Teardown);
        try
        {
            await StopAndReleaseAsync(operation).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A bug or a broken resource must not leave the runstate stuck in Disconnecting.
            PipeProtocolLog.CloseFailed(Logger, PipeProtocolLog.Summarize(ex), ex);
            RecordRootCause(ex);
        }
        finally
        {
            PipeProtocolLog.Disconnected(Logger);
            lock (_gate)
            {
                operation.RootCause = _rootCause;
                operation.TeardownDone = true;
                if (operation.Requested)
                {
                    Finish(operation);
                }
            }
        }
    }

    private async Task StopAndReleaseAsync(DisconnectOperation operation)
    {
        var (reader, connection, listener, outbound, sessionAbort) = operation.Resources;
        if (operation.OutputFailed && reader is not null)
        {
            await DeliverInputFirstAsync(reader, operation).ConfigureAwait(false);
        }

        var errorPathway = Volatile.Read(ref _rootCause) is not null;
        if (!errorPathway && outbound is not null && connection is not null)
        {
            // The writer is closed (ScheduleDisconnect), which flushed what was framed; a flush that
            // waits for the transport is awaited first.
            PipeProtocolLog.Draining(Logger);
            var output = connection.Pipe.Output;
            using (operation.DrainAbortToken.Register(output.CancelPendingFlush))
            {
                await outbound.WhenFlushedAsync().ConfigureAwait(false);
            }

            errorPathway = Volatile.Read(ref _rootCause) is not null || operation.DrainAborted;

            // Then until the transport has sent it, with the read loop still reading (as QEMU's aqmp's
            // reader runs while its writer drains): a peer that answers what it reads stops
            // reading while its answers are not read, and the bytes still to send would never leave.
            errorPathway = errorPathway
                || !await TryTransportStepAsync(static (connection, token) => connection.WaitUntilSentAsync(token), connection, operation).ConfigureAwait(false);
        }

        // Stop the read loop and any wait for the transport; neither faults.
        CancelQuietly(sessionAbort);
        outbound?.Close();
        if (connection is not null && reader is not null)
        {
            connection.Pipe.Input.CancelPendingRead();
            connection.Pipe.Output.CancelPendingFlush();
        }

        await (reader ?? Task.CompletedTask).ConfigureAwait(false);
        if (outbound is not null)
        {
            await outbound.WhenFlushedAsync().ConfigureAwait(false);
        }

        listener?.Dispose();
        DiscardUnsent(outbound);
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
    }

    /// <summary>
    /// Input first: after a failed write, lets the read loop go on delivering what had arrived
    /// until it reaches the end of the input by itself, for at most
    /// <see cref="PipeProtocolOptions.InputDrainTimeout"/> (or until the caller gives up the drain).
    /// </summary>
    private async Task DeliverInputFirstAsync(Task reader, DisconnectOperation operation)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(operation.DrainAbortToken);
        limit.CancelAfter(_options.InputDrainTimeout);
        try
        {
            await reader.WaitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
            PipeProtocolLog.InputDrainTimedOut(Logger, _options.InputDrainTimeout);
        }
    }

    private void DiscardUnsent(OutboundWriter<TMessage>? outbound)
    {
        var dropped = outbound?.Finish() ?? 0;

        if (dropped > 0)
        {
            PipeProtocolLog.DroppedOutbound(Logger, dropped);
        }
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

        await TryTransportStepAsync(static (connection, token) => connection.CloseAsync(token), connection, operation).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs one step of a graceful close with the drain's token; returns whether it succeeded. An
    /// error becomes the root cause; a drain the caller gave up on is no error.
    /// </summary>
    private async Task<bool> TryTransportStepAsync(Func<TransportConnection, CancellationToken, ValueTask> step, TransportConnection connection, DisconnectOperation operation)
    {
        try
        {
            await step(connection, operation.DrainAbortToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (operation.DrainAborted)
        {
            // The caller gave up on the drain; the connection is released regardless.
            return false;
        }
        catch (Exception ex)
        {
            // A brand-new error: the session was healthy until the final flush or close failed.
            PipeProtocolLog.CloseFailed(Logger, PipeProtocolLog.Summarize(ex), ex);
            RecordRootCause(ex);
            return false;
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

    /// <summary>What a teardown stops and releases: the session's resources when it was scheduled.</summary>
    private sealed record SessionResources(
        Task? Reader,
        TransportConnection? Connection,
        SocketListener? Listener,
        OutboundWriter<TMessage>? Outbound,
        CancellationTokenSource? SessionAbort)
    {
        public CancellationToken SessionAbortToken => SessionAbort?.Token ?? CancellationToken.None;
    }

    /// <summary>One teardown: its task, its outcome, and how a caller can cut its drain short. Flags are guarded by the gate.</summary>
    private sealed class DisconnectOperation(SessionResources resources)
    {
        private readonly CancellationTokenSource _drainAbort = new();

        public SessionResources Resources { get; } = resources;

        public Task Teardown { get; set; } = Task.CompletedTask;

        /// <summary>Completed when the runstate has returned to Idle for this disconnect.</summary>
        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Whether a failed write started this disconnect: the input is delivered first.</summary>
        public bool OutputFailed { get; init; }

        /// <summary>Whether DisconnectAsync (not only a failing loop) asked for this disconnect.</summary>
        public bool Requested { get; set; }

        public bool TeardownDone { get; set; }

        public Exception? RootCause { get; set; }

        public CancellationToken DrainAbortToken => _drainAbort.Token;

        public bool DrainAborted => _drainAbort.IsCancellationRequested;

        public void AbortDrain() => _drainAbort.Cancel();
    }
}
