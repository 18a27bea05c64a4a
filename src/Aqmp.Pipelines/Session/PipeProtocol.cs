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
public abstract partial class PipeProtocol<TMessage> : IAsyncDisposable, IOutboundOwner<TMessage>
{
    private readonly Lock _gate = new();
    private readonly IMessageFramer<TMessage> _framer;
    private readonly PipeProtocolOptions _options;
    private TransportOptions? _transportOptions;

    /// <summary>Counts the messages of the sessions started from now on (a server's metrics); null for none.</summary>
    internal MessageActivity? MessageActivity { get; set; }

    /// <summary>Told of every runstate transition, before the <see cref="RunstateChanged"/> handlers; null for none.</summary>
    internal IRunstateObserver? RunstateObserver { get; set; }

    private volatile bool _disposed;

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
        Name = name;
        Logger = loggerFactory?.CreateLogger(LoggerCategory.For(GetType(), name)) ?? NullLogger.Instance;
    }

    /// <summary>
    /// The options of the transports this session opens itself, with a segment pool of its own:
    /// made on first use, so that a session only ever handed open connections (a server's) has none.
    /// </summary>
    private TransportOptions TransportOptions
    {
        get
        {
            if (Volatile.Read(ref _transportOptions) is { } options)
            {
                return options;
            }

            Interlocked.CompareExchange(ref _transportOptions, _options.ToTransportOptions(_options.CreateSegmentPool()), null);
            return _transportOptions;
        }
    }

    /// <summary>The connection's nickname, if any.</summary>
    public string? Name { get; }

    /// <summary>The framer this session reads and writes with.</summary>
    protected IMessageFramer<TMessage> Framer => _framer;

    /// <summary>The logger of this connection (category: the class, plus <c>.{name}</c>).</summary>
    protected ILogger Logger { get; }

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
        _disposed = true;
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
        if (_state.Runstate != required)
        {
            throw NewStateException(required);
        }
    }

    /// <summary>A <see cref="StateException"/> for a call that requires <paramref name="required"/>, made in the current runstate.</summary>
    private StateException NewStateException(Runstate required, Exception? cause = null)
    {
        var state = Runstate;
        return new(StateException.DescribeState(GetType().Name, state), state, required, cause);
    }
}
