using System.Net.Security;
using System.Runtime.CompilerServices;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// The runstate as one value: one immutable state object per runstate, swapped by MoveTo alone.
public abstract partial class PipeProtocol<TMessage>
{
    // Written only by MoveTo, under the gate; read anywhere with one volatile read.
    private volatile SessionState _state = new IdleState();

    /// <summary>
    /// Raised on every runstate transition, synchronously, on the thread that makes it and in the
    /// order transitions happen, while the object's internal lock is held: handlers must be quick,
    /// must not block on other threads that use this object, and must not call its methods that
    /// change state. Every handler sees every transition; an exception from one is logged and
    /// otherwise ignored. For asynchronous watching use <see cref="WatchRunstateAsync"/>.
    /// </summary>
    public event EventHandler<RunstateChangedEventArgs>? RunstateChanged;

    /// <summary>The current runstate. Any state; takes no lock.</summary>
    public Runstate Runstate => _state.Runstate;

    /// <summary>
    /// Waits for the next runstate transition after this call and returns the runstate it entered
    /// (QEMU aqmp's <c>runstate_changed()</c>). Any state: this call is not guarded.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The runstate entered by the first transition after the call.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public async Task<Runstate> WaitForRunstateChangeAsync(CancellationToken cancellationToken = default)
    {
        var next = await _state.Next.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return next.Runstate;
    }

    /// <summary>
    /// Enumerates every runstate transition after this call, in order, none missed however fast
    /// they follow each other. Any state: this call is not guarded.
    /// </summary>
    /// <param name="cancellationToken">Ends the enumeration with <see cref="OperationCanceledException"/>.</param>
    /// <returns>The runstates entered, one per transition.</returns>
    public async IAsyncEnumerable<Runstate> WatchRunstateAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var at = _state;
        while (true)
        {
            at = await at.Next.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            yield return at.Runstate;
        }
    }

    /// <summary>
    /// The one transition function: replaces the state object, and, when the runstate changes,
    /// logs the transition, wakes the watchers and raises <see cref="RunstateChanged"/>. Call under
    /// the gate. The transitions it allows:
    /// <list type="table">
    /// <listheader><term>From → to</term><description>Made by</description></listheader>
    /// <item><term>Idle → Connecting</term><description>
    /// <see cref="ConnectAsync(System.Net.EndPoint, SslClientAuthenticationOptions?, CancellationToken)"/>,
    /// <c>StartServerAsync</c>, <c>OpenAsync</c>: an attempt begins.</description></item>
    /// <item><term>Idle → Disconnecting</term><description><see cref="DisconnectAsync"/> while idle: a teardown with nothing to release.</description></item>
    /// <item><term>Connecting → Connecting</term><description>
    /// Not a transition (no event, no watcher woken): the attempt records its listener or its
    /// transport, ends leaving a listener for <see cref="AcceptAsync"/>, or <see cref="AcceptAsync"/>
    /// begins an attempt on that listener.</description></item>
    /// <item><term>Connecting → Running</term><description>The handshake succeeded: the writer is made and the read loop started.</description></item>
    /// <item><term>Connecting → Disconnecting</term><description>
    /// An attempt failed or was cancelled and rolls back; or <see cref="DisconnectAsync"/> tears
    /// down a listener waiting for <see cref="AcceptAsync"/>.</description></item>
    /// <item><term>Running → Disconnecting</term><description>
    /// <see cref="DisconnectAsync"/>, <see cref="MessageContext{TMessage}.EndSession"/>, a failed
    /// loop or send, or the peer closing: the teardown is scheduled and the writer closed.</description></item>
    /// <item><term>Disconnecting → Disconnecting</term><description>
    /// Not a transition: a disconnect is asked for, or the teardown is done (but not both yet).</description></item>
    /// <item><term>Disconnecting → Idle</term><description>
    /// A rollback released what its attempt opened; or a teardown is done and
    /// <see cref="DisconnectAsync"/> asked for it.</description></item>
    /// </list>
    /// </summary>
    /// <exception cref="InvalidOperationException">Any other transition: a bug in this class.</exception>
    private void MoveTo(SessionState next)
    {
        var previous = _state;
        // Within a runstate, only a copy made with `with`, which keeps the watchers' signal.
        var allowed = previous.Runstate == next.Runstate
            ? previous.Runstate is Runstate.Connecting or Runstate.Disconnecting && previous.Next == next.Next
            : (previous.Runstate, next.Runstate) switch
            {
                (Runstate.Idle, Runstate.Connecting or Runstate.Disconnecting) => true,
                (Runstate.Connecting, Runstate.Running or Runstate.Disconnecting) => true,
                (Runstate.Running, Runstate.Disconnecting) => true,
                (Runstate.Disconnecting, Runstate.Idle) => true,
                _ => false,
            };
        if (!allowed)
        {
            throw new InvalidOperationException($"No runstate transition from {previous.Runstate} to {next.Runstate}.");
        }

        _state = next;
        if (previous.Runstate == next.Runstate)
        {
            return;
        }

        PipeProtocolLog.Transition(Logger, previous.Runstate, next.Runstate);
        previous.Next.Complete(next);
        RunstateObserver?.RunstateEntered(next.Runstate);
        if (RunstateChanged is not { } handlers)
        {
            return;
        }

        var args = new RunstateChangedEventArgs(previous.Runstate, next.Runstate);
        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                ((EventHandler<RunstateChangedEventArgs>)handler)(this, args);
            }
            catch (Exception ex)
            {
                PipeProtocolLog.RunstateHandlerFailed(Logger, ex);
            }
        }
    }

    /// <summary>What exists in one runstate; immutable, replaced whole by <see cref="MoveTo"/>.</summary>
    /// <param name="Runstate">The runstate this object describes.</param>
    private abstract record SessionState(Runstate Runstate)
    {
        /// <summary>
        /// Completed with the state entered by the next runstate transition. A copy made with
        /// <c>with</c> (the same runstate) shares it, so a watcher never misses a transition.
        /// </summary>
        public Transition Next { get; } = new();

        /// <summary>The connection attempt under way (Connecting) or rolling back (Disconnecting), if any.</summary>
        public ConnectAttempt? Attempt { get; init; }

        /// <summary>The writer of the session that is running or being torn down, if any.</summary>
        public virtual OutboundWriter<TMessage>? SessionOutbound => null;
    }

    /// <summary>
    /// The next runstate transition after a state, shared by the copies <c>with</c> makes of it:
    /// its task is made only when someone waits for it (most transitions have no watcher).
    /// </summary>
    private sealed class Transition
    {
        /// <summary>Null; the source a waiter made; or the state entered, when the transition came first.</summary>
        private object? _value;

        /// <summary>Completes with the state entered by the transition.</summary>
        public Task<SessionState> Task
        {
            get
            {
                while (true)
                {
                    switch (Volatile.Read(ref _value))
                    {
                        case TaskCompletionSource<SessionState> waiting:
                            return waiting.Task;
                        case SessionState entered:
                            return System.Threading.Tasks.Task.FromResult(entered);
                        default:
                            var source = new TaskCompletionSource<SessionState>(TaskCreationOptions.RunContinuationsAsynchronously);
                            if (Interlocked.CompareExchange(ref _value, source, null) is null)
                            {
                                return source.Task;
                            }

                            break;
                    }
                }
            }
        }

        /// <summary>Records the transition into <paramref name="entered"/> and wakes whoever waits. Called once.</summary>
        public void Complete(SessionState entered)
        {
            if (Interlocked.CompareExchange(ref _value, entered, null) is TaskCompletionSource<SessionState> waiting)
            {
                waiting.SetResult(entered);
            }
        }
    }

    /// <summary>No transport, no loops.</summary>
    private sealed record IdleState() : SessionState(Runstate.Idle);

    /// <summary>
    /// An attempt under way, a listener waiting for <see cref="AcceptAsync"/>, or both; once an
    /// attempt has its transport, the connection and its reader, which the handshake uses.
    /// </summary>
    private sealed record ConnectingState() : SessionState(Runstate.Connecting)
    {
        public SocketListener? Listener { get; init; }

        public SslServerAuthenticationOptions? ServerTls { get; init; }

        public TransportConnection? Connection { get; init; }

        public MessageReader<TMessage>? Reader { get; init; }
    }

    /// <summary>The established session: its transport, its writer, and its read loop with what stops it.</summary>
    private sealed record RunningState(TransportConnection Connection, OutboundWriter<TMessage> Outbound, CancellationTokenSource Abort, Task ReadLoop)
        : SessionState(Runstate.Running)
    {
        public override OutboundWriter<TMessage>? SessionOutbound => Outbound;
    }

    /// <summary>
    /// An attempt rolling back (<see cref="SessionState.Attempt"/>), or the teardown of what the
    /// state before had, with how far it is: a disconnect asked for, the teardown done. When both,
    /// the runstate returns to Idle; a session that ended by itself waits here, done, for the request.
    /// </summary>
    private sealed record DisconnectingState(Teardown? Teardown) : SessionState(Runstate.Disconnecting)
    {
        public bool Requested { get; init; }

        public bool Done { get; init; }

        public override OutboundWriter<TMessage>? SessionOutbound => Teardown?.Session?.Outbound;
    }
}
