using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Transports;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Aqmp.Pipelines.Session;

/// <summary>
/// One message-protocol session over a duplex pipe: a TCP, Unix-domain or TLS connection, an
/// existing socket, stream or pipe. Subclass it to implement a protocol.
/// </summary>
/// <typeparam name="TMessage">The protocol's message type, framed by an <see cref="IMessageFramer{TMessage}"/>.</typeparam>
/// <remarks>
/// <para>
/// <b>Runstate.</b> A session goes <see cref="Runstate.Idle"/> → <see cref="Runstate.Connecting"/> →
/// <see cref="Runstate.Running"/> → <see cref="Runstate.Disconnecting"/> → <see cref="Runstate.Idle"/>, and
/// every public call is guarded by the runstate it requires: a call in another runstate raises
/// <see cref="StateException"/>. A failed or cancelled connection attempt rolls back
/// (<see cref="Runstate.Disconnecting"/>, then <see cref="Runstate.Idle"/>) before its error is raised.
/// A session that ends by itself (the peer closed, a loop failed) stops in
/// <see cref="Runstate.Disconnecting"/>; <see cref="DisconnectAsync"/> returns it to
/// <see cref="Runstate.Idle"/> and raises the error that ended it. The object can connect again.
/// </para>
/// <para>
/// <b>Upper half and bottom half.</b> The public calls run in the caller's context (the upper half).
/// While <see cref="Runstate.Running"/>, a read loop parses every frame buffered and hands each
/// message, in order, to <see cref="OnMessageAsync"/> (the bottom half); <see cref="SendAsync"/>
/// frames each outbound message straight into the transport's send buffer and hands it to the
/// transport's send loop. Nothing allocates per message on the library's own account.
/// </para>
/// <para>
/// <b>Threading.</b> Public members are thread-safe. <see cref="OnMessageAsync"/> and
/// <see cref="OnInbound"/> run on the read loop, one message at a time; <see cref="OnOutbound"/>
/// runs in the sender's context, one message at a time, in the order messages are written.
/// </para>
/// </remarks>
public abstract partial class PipeProtocol<TMessage> : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly IMessageFramer<TMessage> _framer;
    private readonly PipeProtocolOptions _options;
    private readonly TransportOptions _transportOptions;

    private Runstate _runstate = Runstate.Idle;
    private RunstateNode _currentRunstate = new(Runstate.Idle);
    private bool _disposed;

    // The current session's resources; all guarded by _gate, all reset by ResetSession().
    private TransportConnection? _connection;
    private SocketListener? _listener;
    private SslServerAuthenticationOptions? _serverTls;
    private SessionStart? _start;
    private OutboundWriter<TMessage>? _outbound;
    private OutboundWriter<TMessage>? _runningOutbound; // _outbound while Running: SendAsync's path that takes no gate
    private CancellationTokenSource? _sessionAbort;
    private Task? _readerTask;
    private DisconnectOperation? _disconnect;
    private Exception? _rootCause;

    /// <summary>
    /// Creates a protocol object in <see cref="Runstate.Idle"/>.
    /// </summary>
    /// <param name="framer">Turns bytes into messages and back.</param>
    /// <param name="options">Buffering and shutdown settings; <see cref="PipeProtocolOptions.Default"/> when null.</param>
    /// <param name="loggerFactory">
    /// Where to log; nothing is logged when null. The category is the concrete class's full name,
    /// plus <c>.{name}</c> when <paramref name="name"/> is given.
    /// </param>
    /// <param name="name">A nickname for this connection, used in logs and <see cref="ToString"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    protected PipeProtocol(IMessageFramer<TMessage> framer, PipeProtocolOptions? options = null, ILoggerFactory? loggerFactory = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(framer);
        _framer = framer;
        _options = options ?? PipeProtocolOptions.Default;
        _options.Validate();
        _transportOptions = _options.ToTransportOptions(_options.CreateSegmentPool());
        Name = name;
        Logger = loggerFactory?.CreateLogger(LoggerCategory.For(GetType(), name)) ?? NullLogger.Instance;
    }

    /// <summary>
    /// Raised on every runstate transition, synchronously, on the thread that makes it and in the
    /// order transitions happen, while the object's internal lock is held: handlers must be quick,
    /// must not block on other threads that use this object, and must not call its methods that
    /// change state. Every handler sees every transition; an exception from one is logged and
    /// otherwise ignored. For asynchronous watching use <see cref="WatchRunstateAsync"/>.
    /// </summary>
    public event EventHandler<RunstateChangedEventArgs>? RunstateChanged;

    /// <summary>The connection's nickname, if any.</summary>
    public string? Name { get; }

    /// <summary>The current runstate.</summary>
    public Runstate Runstate
    {
        get
        {
            lock (_gate)
            {
                return _runstate;
            }
        }
    }

    /// <summary>The framer this session reads and writes with.</summary>
    protected IMessageFramer<TMessage> Framer => _framer;

    /// <summary>The logger of this connection (category: the class, plus <c>.{name}</c>).</summary>
    protected ILogger Logger { get; }

    /// <summary>
    /// Waits for the next runstate transition after this call and returns the runstate it entered
    /// (QEMU aqmp's <c>runstate_changed()</c>). Any state: this call is not guarded.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The runstate entered by the first transition after the call.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public async Task<Runstate> WaitForRunstateChangeAsync(CancellationToken cancellationToken = default)
    {
        RunstateNode from;
        lock (_gate)
        {
            from = _currentRunstate;
        }

        var next = await from.Next.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return next.State;
    }

    /// <summary>
    /// Enumerates every runstate transition after this call, in order, none missed however fast
    /// they follow each other. Any state: this call is not guarded.
    /// </summary>
    /// <param name="cancellationToken">Ends the enumeration with <see cref="OperationCanceledException"/>.</param>
    /// <returns>The runstates entered, one per transition.</returns>
    public async IAsyncEnumerable<Runstate> WatchRunstateAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        RunstateNode at;
        lock (_gate)
        {
            at = _currentRunstate;
        }

        while (true)
        {
            at = await at.Next.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            yield return at.State;
        }
    }

    /// <summary>
    /// Disconnects (see <see cref="DisconnectAsync"/>), logging rather than raising the error that
    /// ended the session, and makes every later guarded call raise <see cref="ObjectDisposedException"/>.
    /// Safe at any moment and more than once. The graceful drain gets at most
    /// <see cref="PipeProtocolOptions.DisposeDrainTimeout"/>: a peer that never reads cannot hold
    /// an <c>await using</c> forever (what was not flushed by then is discarded and logged).
    /// </summary>
    /// <returns>
    /// A task that completes when the object is <see cref="Runstate.Idle"/>; called from the
    /// session's own hooks, it completes at once and the object reaches <see cref="Runstate.Idle"/>
    /// as soon as the hook returns.
    /// </returns>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        using var drainLimit = new CancellationTokenSource(_options.DisposeDrainTimeout);
        try
        {
            await DisconnectAsync(drainLimit.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            PipeProtocolLog.DisposedWithError(Logger, PipeProtocolLog.Summarize(ex));
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Names the type, the connection's name when set, and the runstate (QEMU aqmp's <c>__repr__</c>).</summary>
    /// <returns>For example <c>&lt;EchoClient name='left' runstate=Running&gt;</c>.</returns>
    public override string ToString()
    {
        var name = Name is null ? string.Empty : $" name='{Name}'";
        return $"<{GetType().Name}{name} runstate={Runstate}>";
    }

    /// <summary>Throws <see cref="StateException"/> unless the runstate is <paramref name="required"/>. Call under the gate.</summary>
    private void Require(Runstate required)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_runstate != required)
        {
            throw NewStateException(required);
        }
    }

    private StateException NewStateException(Runstate required, Exception? cause = null)
        => new(StateException.DescribeState(GetType().Name, _runstate), _runstate, required, cause);

    /// <summary>Changes the runstate and tells every watcher. Call under the gate.</summary>
    private void SetState(Runstate state)
    {
        if (state == _runstate)
        {
            return;
        }

        var previous = _runstate;
        PipeProtocolLog.Transition(Logger, previous, state);
        _runstate = state;
        var node = new RunstateNode(state);
        var before = _currentRunstate;
        _currentRunstate = node;
        before.Next.SetResult(node);

        if (RunstateChanged is not { } handlers)
        {
            return;
        }

        var args = new RunstateChangedEventArgs(previous, state);
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

    /// <summary>Records the first error that ended the session: its root cause.</summary>
    private void RecordRootCause(Exception error) => Interlocked.CompareExchange(ref _rootCause, error, null);

    /// <summary>Forgets the session's resources, which must already be released. Call under the gate.</summary>
    private void ResetSession()
    {
        _connection = null;
        _listener = null;
        _serverTls = null;
        _start = null;
        _outbound = null;
        _runningOutbound = null;
        _sessionAbort?.Dispose();
        _sessionAbort = null;
        _readerTask = null;
        _disconnect = null;
        _rootCause = null;
        _reader = null;
    }

    /// <summary>One transition in the chain of runstates; each links to the next when it happens.</summary>
    private sealed class RunstateNode(Runstate state)
    {
        public Runstate State { get; } = state;

        public TaskCompletionSource<RunstateNode> Next { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
