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
            _state.Attempt?.Abort.Cancel();
            throw new OperationCanceledException("DisconnectAsync was called from EstablishSessionAsync: the connection attempt is cancelled.");
        }

        var fromTeardown = SessionFlow.Is(this, SessionFlowRole.Teardown);
        Teardown teardown;
        while (true)
        {
            ConnectAttempt? attempt;
            lock (_gate)
            {
                // An attempt connecting or rolling back ends the session itself.
                attempt = fromTeardown ? null : _state.Attempt;
                if (attempt is null)
                {
                    teardown = ScheduleDisconnect(requested: true);
                    break;
                }
            }

            // Cancel outside the gate: cancellation callbacks may resume the attempt inline.
            attempt.Abort.Cancel();
            await attempt.Finished.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (_state is IdleState)
            {
                return;
            }
        }

        if (fromTeardown)
        {
            return;
        }

        using (cancellationToken.Register(static state => ((Teardown)state!).AbortDrain(), teardown))
        {
            if (SessionFlow.Is(this, SessionFlowRole.ReadLoop))
            {
                // The teardown must stop this very loop before it can end: raise once it does.
                await teardown.Finished.Task.WaitAsync(teardown.Session?.Abort.Token ?? default).ConfigureAwait(false);
            }

            try
            {
                await teardown.Finished.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // The drain is aborted; the teardown now only releases. Let it reach Idle unless a hook
                // that ignores its token holds it up.
                await Task.WhenAny(teardown.Finished.Task, Task.Delay(AbandonedDrainGrace, CancellationToken.None)).ConfigureAwait(false);
                if (!teardown.Finished.Task.IsCompleted)
                {
                    throw;
                }
            }
        }

        if (teardown.RootCause is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }

        if (teardown.DrainAborted)
        {
            cancellationToken.ThrowIfCancellationRequested();
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

    /// <summary>
    /// Starts the teardown of the current state unless one is under way (QEMU's aqmp's
    /// <c>_schedule_disconnect</c>): enters <see cref="Runstate.Disconnecting"/> and closes the
    /// session's writer. Idempotent; used by <see cref="DisconnectAsync"/> and by a failing loop
    /// or send. Call under the gate.
    /// </summary>
    /// <param name="requested">
    /// A disconnect is asked for (not only a failing loop): the runstate returns to
    /// <see cref="Runstate.Idle"/> as soon as the teardown is done.
    /// </param>
    /// <param name="outputFailed">
    /// A failed write is what ends the session: the teardown first lets the read loop deliver what
    /// had arrived, up to <see cref="PipeProtocolOptions.InputDrainTimeout"/> (input first).
    /// </param>
    /// <param name="rootCause">The error that ends the session, recorded unless an earlier one was.</param>
    private Teardown ScheduleDisconnect(bool requested = false, bool outputFailed = false, Exception? rootCause = null)
    {
        if (_state is DisconnectingState { Teardown: { } teardown })
        {
            teardown.RecordRootCause(rootCause);
        }
        else
        {
            // The root cause is there before the state is: whoever sees Disconnecting sees why.
            teardown = new Teardown(_state, outputFailed, rootCause);
            MoveTo(new DisconnectingState(teardown));
            teardown.Session?.Outbound.Close();
            _ = Task.Run(() => TeardownAsync(teardown));
        }

        if (requested && _state is DisconnectingState { Requested: false } current)
        {
            Advance(current with { Requested = true });
        }

        return teardown;
    }

    /// <summary>
    /// Enters <paramref name="next"/>, the same teardown further on; once it is done and a
    /// disconnect was requested, ends the disconnect instead (QEMU aqmp's <c>_cleanup</c>):
    /// returns to <see cref="Runstate.Idle"/> and wakes its callers. Call under the gate.
    /// </summary>
    private void Advance(DisconnectingState next)
    {
        if (!next.Requested || !next.Done)
        {
            MoveTo(next);
            return;
        }

        next.Teardown!.Session?.Abort.Dispose();
        MoveTo(new IdleState());
        next.Teardown.Finished.TrySetResult();
    }

    /// <summary>
    /// Stops the session (QEMU aqmp's <c>_bh_disconnect</c>): flush what senders framed unless
    /// the session already failed, stop both loops, close the transport, run the end hook; or
    /// close the listener that waited for <see cref="AcceptAsync"/>. Never faults; errors become
    /// the root cause.
    /// </summary>
    private async Task TeardownAsync(Teardown teardown)
    {
        SessionFlow.Enter(this, SessionFlowRole.Teardown);
        try
        {
            (teardown.From as ConnectingState)?.Listener?.Dispose();
            if (teardown.Session is { } session)
            {
                await StopAndReleaseAsync(session, teardown).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            // A bug or a broken resource must not leave the runstate stuck in Disconnecting.
            PipeProtocolLog.CloseFailed(Logger, PipeProtocolLog.Summarize(ex), ex);
            teardown.RecordRootCause(ex);
        }
        finally
        {
            PipeProtocolLog.Disconnected(Logger);
            lock (_gate)
            {
                // The teardown stays the state's until it is done: nothing else leaves Disconnecting.
                Advance((DisconnectingState)_state with { Done = true });
            }
        }
    }

    private async Task StopAndReleaseAsync(RunningState session, Teardown teardown)
    {
        var (connection, outbound, abort, readLoop) = (session.Connection, session.Outbound, session.Abort, session.ReadLoop);
        if (teardown.OutputFailed)
        {
            // Input first: after a failed write, the read loop goes on delivering what had arrived
            // until it reaches the end of the input by itself, for at most InputDrainTimeout (or
            // until the caller gives up the drain).
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(teardown.DrainAbortToken);
            limit.CancelAfter(_options.InputDrainTimeout);
            try
            {
                await readLoop.WaitAsync(limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (limit.IsCancellationRequested)
            {
                PipeProtocolLog.InputDrainTimedOut(Logger, _options.InputDrainTimeout);
            }
        }

        var errorPathway = teardown.RootCause is not null;
        if (!errorPathway)
        {
            // The writer is closed (ScheduleDisconnect), which flushed what was framed; a flush that
            // waits for the transport is awaited first.
            PipeProtocolLog.Draining(Logger);
            using (teardown.DrainAbortToken.Register(connection.Pipe.Output.CancelPendingFlush))
            {
                await outbound.WhenFlushedAsync().ConfigureAwait(false);
            }

            // Then until the transport has sent it, with the read loop still reading (as QEMU's aqmp's
            // reader runs while its writer drains): a peer that answers what it reads stops
            // reading while its answers are not read, and the bytes still to send would never leave.
            errorPathway = teardown.RootCause is not null || teardown.DrainAborted
                || !await TryTransportStepAsync(static (connection, token) => connection.WaitUntilSentAsync(token), connection, teardown).ConfigureAwait(false);
        }

        // Stop the read loop and any wait for the transport; neither faults.
        try
        {
            abort.Cancel();
        }
        catch (AggregateException)
        {
            // A callback registered by user code threw; the loops still see the cancellation.
        }

        outbound.Close();
        connection.Pipe.Input.CancelPendingRead();
        connection.Pipe.Output.CancelPendingFlush();
        await readLoop.ConfigureAwait(false);
        await outbound.WhenFlushedAsync().ConfigureAwait(false);
        if (outbound.Finish() is > 0 and var dropped)
        {
            PipeProtocolLog.DroppedOutbound(Logger, dropped);
        }

        if (errorPathway)
        {
            connection.Abort();
        }
        else
        {
            await TryTransportStepAsync(static (connection, token) => connection.CloseAsync(token), connection, teardown).ConfigureAwait(false);
        }

        try
        {
            await OnSessionEndedAsync(teardown.RootCause).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            PipeProtocolLog.SessionEndedHookFailed(Logger, PipeProtocolLog.Summarize(ex), ex);
            teardown.RecordRootCause(ex);
        }
    }

    /// <summary>
    /// Runs one step of a graceful close with the drain's token; returns whether it succeeded. An
    /// error becomes the root cause; a drain the caller gave up on is no error.
    /// </summary>
    private async Task<bool> TryTransportStepAsync(Func<TransportConnection, CancellationToken, ValueTask> step, TransportConnection connection, Teardown teardown)
    {
        try
        {
            await step(connection, teardown.DrainAbortToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (teardown.DrainAborted)
        {
            // The caller gave up on the drain; the connection is released regardless.
            return false;
        }
        catch (Exception ex)
        {
            // A brand-new error: the session was healthy until the final flush or close failed.
            PipeProtocolLog.CloseFailed(Logger, PipeProtocolLog.Summarize(ex), ex);
            teardown.RecordRootCause(ex);
            return false;
        }
    }

    /// <summary>
    /// One teardown: what it stops (the state it was scheduled from), its root cause, its outcome,
    /// and how a caller can cut its drain short.
    /// </summary>
    private sealed class Teardown(SessionState from, bool outputFailed, Exception? rootCause)
    {
        private readonly CancellationTokenSource _drainAbort = new();
        private Exception? _rootCause = rootCause;

        /// <summary>The state the teardown was scheduled from: what it stops and releases.</summary>
        public SessionState From { get; } = from;

        /// <summary>The session that was running, if the teardown ends one.</summary>
        public RunningState? Session => From as RunningState;

        /// <summary>Completed when the runstate has returned to Idle for this disconnect.</summary>
        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Whether a failed write started this disconnect: the input is delivered first.</summary>
        public bool OutputFailed { get; } = outputFailed;

        /// <summary>The first error that ended the session: its root cause.</summary>
        public Exception? RootCause => Volatile.Read(ref _rootCause);

        public CancellationToken DrainAbortToken => _drainAbort.Token;

        public bool DrainAborted => _drainAbort.IsCancellationRequested;

        /// <summary>Records <paramref name="error"/> as the root cause unless one was recorded first.</summary>
        public void RecordRootCause(Exception? error)
        {
            if (error is not null)
            {
                Interlocked.CompareExchange(ref _rootCause, error, null);
            }
        }

        public void AbortDrain() => _drainAbort.Cancel();
    }
}
