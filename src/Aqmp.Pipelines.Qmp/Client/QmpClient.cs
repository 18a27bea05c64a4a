using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>
/// A QEMU Machine Protocol client: connects (see <see cref="PipeProtocol{TMessage}"/>), reads the
/// greeting, negotiates capabilities, then executes commands — many at once, pipelined, replies
/// matched by id — and delivers events to any number of <see cref="QmpEventListener"/>s.
/// </summary>
/// <remarks>
/// <para>
/// Connecting fails with <see cref="QmpNegotiationException"/> when the peer is not a QMP server,
/// refuses <c>qmp_capabilities</c>, or sends no greeting within
/// <see cref="QmpClientOptions.GreetingTimeout"/> (as QEMU does while another client holds the
/// monitor) or then no reply to <c>qmp_capabilities</c> within as long again, and with a <see cref="ConnectException"/> wrapping a <see cref="TimeoutException"/>
/// when the transport does not connect within <see cref="QmpClientOptions.ConnectTimeout"/>. Events the server sends before or during the negotiation are
/// kept and delivered to the listeners, first.
/// </para>
/// <para>
/// When the session ends — the server exits, the socket drops, <c>DisconnectAsync</c> — every
/// pending execute fails with <see cref="QmpExecuteInterruptedException"/> and every listener's
/// enumeration ends, so nothing waits on a dead server. Once <c>quit</c> is sent, the server
/// closing (or resetting) the connection is the expected, clean end of the session, and no further
/// command is written to it: each later execute fails at once with
/// <see cref="QmpExecuteInterruptedException"/> (a write to a server that has exited would, over
/// TCP, make its kernel reset the connection and ours discard the replies and events it had sent
/// before exiting). <c>quit</c> itself returns the server's reply; when the server closed the
/// connection without sending one, <see cref="ExecuteAsync(string, JsonElement?, CancellationToken)"/>
/// returns an undefined <see cref="JsonElement"/> (<see cref="JsonValueKind.Undefined"/>: there is
/// no reply) and <see cref="ExecuteMessageAsync"/> raises <see cref="QmpExecuteInterruptedException"/>.
/// </para>
/// </remarks>
public partial class QmpClient : PipeProtocol<QmpMessage>
{
    private const string CapabilitiesCommand = "qmp_capabilities";
    private const string QuitCommand = "quit";

    private readonly QmpClientOptions _options;
    private readonly ConcurrentDictionary<long, PendingExecute> _pending = new();
    private readonly Lock _listenersGate = new();
    private List<QmpEventListener> _listeners = [];
    private long _nextId;
    private volatile bool _quitSucceeded;
    private volatile bool _quitWritten;
    private int _quitsPending;

    /// <summary>Creates a client in <see cref="Runstate.Idle"/>.</summary>
    /// <param name="options">Client settings; <see cref="QmpClientOptions.Default"/> when null.</param>
    /// <param name="loggerFactory">Where to log; nothing is logged when null.</param>
    /// <param name="name">A nickname for the connection, used in logs.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting of <paramref name="options"/> is out of range (see <see cref="QmpClientOptions.Validate"/>).</exception>
    public QmpClient(QmpClientOptions? options = null, ILoggerFactory? loggerFactory = null, string? name = null)
        : base(new QmpFramer(Validated(options).MaximumMessageLength), Validated(options).SessionWithTimeouts(), loggerFactory, name)
    {
        _options = options ?? QmpClientOptions.Default;
    }

    /// <summary>The greeting of the current (or last) session's server; null before the first.</summary>
    public QmpGreeting? Greeting { get; private set; }

    /// <summary>Whether out-of-band execution was enabled for the current session.</summary>
    public bool OutOfBandEnabled { get; private set; }

    /// <summary>
    /// True once <c>quit</c> has been answered or is awaiting its answer: QEMU exits, and may close
    /// the connection (even reset it) before its reply arrives.
    /// </summary>
    protected override bool IsPeerCloseExpected => _quitSucceeded || Volatile.Read(ref _quitsPending) > 0;

    /// <summary>
    /// Creates an event listener, registered at once: it receives every later event whose name
    /// it accepts, until the session ends or it is disposed. Create it before connecting to see
    /// the events a server sends during the negotiation.
    /// </summary>
    /// <param name="names">The event names to accept (e.g. <c>STOP</c>); none for every event.</param>
    /// <returns>The listener; dispose it to stop listening.</returns>
    public QmpEventListener Listen(params string[] names)
    {
        var listener = new QmpEventListener(names, _options.EventListenerCapacity, _options.EventOverflowPolicy, Unregister);
        lock (_listenersGate)
        {
            _listeners = [.. _listeners, listener];
        }

        return listener;
    }

    /// <summary>
    /// Executes a command and returns its <c>return</c> value.
    /// </summary>
    /// <param name="command">The command, e.g. <c>query-status</c>.</param>
    /// <param name="arguments">Its arguments, a JSON object, or null.</param>
    /// <param name="cancellationToken">Stops waiting for the reply; the session stays usable and the late reply is discarded.</param>
    /// <returns>The <c>return</c> value.</returns>
    /// <exception cref="QmpExecuteException">The server answered with an error.</exception>
    /// <exception cref="QmpExecuteInterruptedException">The session ended before the reply, or <c>quit</c> was sent before this command (which then was not sent).</exception>
    /// <exception cref="StateException">The client is not <see cref="Runstate.Running"/>.</exception>
    /// <exception cref="TimeoutException"><see cref="QmpClientOptions.DefaultExecuteTimeout"/> elapsed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async Task<JsonElement> ExecuteAsync(string command, JsonElement? arguments = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        var reply = await ExecuteCoreAsync(command, id => QmpMessage.Command(command, arguments, id), cancellationToken).ConfigureAwait(false);
        return reply is null ? default : ReturnValueOf(command, reply);
    }

    /// <summary>
    /// Executes a command and deserializes its <c>return</c> value with source-generated metadata
    /// (trimming- and NativeAOT-safe).
    /// </summary>
    /// <typeparam name="T">The result type.</typeparam>
    /// <param name="command">The command.</param>
    /// <param name="arguments">Its arguments, a JSON object, or null.</param>
    /// <param name="resultType">The metadata of <typeparamref name="T"/>, e.g. from a <c>JsonSerializerContext</c>.</param>
    /// <param name="cancellationToken">Stops waiting for the reply.</param>
    /// <returns>The deserialized <c>return</c> value.</returns>
    /// <exception cref="QmpExecuteException">The server answered with an error.</exception>
    /// <exception cref="QmpExecuteInterruptedException">The session ended before the reply, or <c>quit</c> was sent before this command (which then was not sent).</exception>
    /// <exception cref="JsonException">The value does not fit <typeparamref name="T"/>.</exception>
    public async Task<T?> ExecuteAsync<T>(string command, JsonElement? arguments, JsonTypeInfo<T> resultType, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(resultType);
        var value = await ExecuteAsync(command, arguments, cancellationToken).ConfigureAwait(false);
        return value.ValueKind == JsonValueKind.Undefined ? default : value.Deserialize(resultType);
    }

    /// <summary>
    /// Sends a command message as it is (with a fresh id, replacing any it has) and returns the raw
    /// reply, success or error, without interpreting it.
    /// </summary>
    /// <param name="command">A message of kind <see cref="QmpMessageKind.Command"/>.</param>
    /// <param name="cancellationToken">Stops waiting for the reply; the late reply is discarded.</param>
    /// <returns>The reply: <see cref="QmpMessageKind.Return"/> or <see cref="QmpMessageKind.Error"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="command"/> is not a command.</exception>
    /// <exception cref="QmpExecuteInterruptedException">The session ended before the reply, or <c>quit</c> was sent before this command (which then was not sent).</exception>
    /// <exception cref="StateException">The client is not <see cref="Runstate.Running"/>.</exception>
    /// <exception cref="TimeoutException"><see cref="QmpClientOptions.DefaultExecuteTimeout"/> elapsed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public Task<QmpMessage> ExecuteMessageAsync(QmpMessage command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (command.Kind != QmpMessageKind.Command)
        {
            throw new ArgumentException($"A {command.Kind} message cannot be executed.", nameof(command));
        }

        return ExecuteMessageCoreAsync(command, cancellationToken);
    }

    private async Task<QmpMessage> ExecuteMessageCoreAsync(QmpMessage command, CancellationToken cancellationToken)
    {
        var name = command.CommandName!;
        return await ExecuteCoreAsync(name, command.WithId, cancellationToken).ConfigureAwait(false)
            ?? throw new QmpExecuteInterruptedException(name, "the server closed the connection after quit without replying (the quit took effect).", null);
    }

    /// <summary>
    /// Registers a pending execute under a fresh id, sends the command <paramref name="build"/>
    /// makes with that id (built once), and waits for its reply: null when the server closed the
    /// connection after <c>quit</c> without replying to it.
    /// </summary>
    private async Task<QmpMessage?> ExecuteCoreAsync(string name, Func<JsonElement, QmpMessage> build, CancellationToken cancellationToken, ReadOnlyMemory<SafeHandle> descriptors = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var id = Interlocked.Increment(ref _nextId);
        var pending = new PendingExecute(name);
        _pending[id] = pending;
        var isQuit = name == QuitCommand;
        if (isQuit)
        {
            Interlocked.Increment(ref _quitsPending);
        }

        using var timeout = _options.DefaultExecuteTimeout is { } limit ? new CancellationTokenSource(limit) : null;
        using var linked = timeout is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var token = linked?.Token ?? cancellationToken;
        try
        {
            if (descriptors.IsEmpty)
            {
                await SendAsync(build(IdElement(id)), token).ConfigureAwait(false);
            }
            else
            {
                await SendWithDescriptorsAsync(build(IdElement(id)), descriptors, token).ConfigureAwait(false);
            }

            return await pending.Reply.Task.WaitAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (linked is not null)
        {
            // Report the caller's own token, or the default timeout as a TimeoutException.
            if (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(ex.Message, ex, cancellationToken);
            }

            throw new TimeoutException($"{name}: no reply within {_options.DefaultExecuteTimeout}.", ex);
        }
        finally
        {
            _pending.TryRemove(id, out _);
            if (isQuit)
            {
                Interlocked.Decrement(ref _quitsPending);
            }
        }
    }

    /// <summary>Reads the greeting and negotiates capabilities (as QEMU's <c>aqmp</c> QMPClient does).</summary>
    /// <param name="handshake">The negotiation's access to the connection.</param>
    /// <param name="cancellationToken">Cancels the negotiation.</param>
    /// <returns>A task that completes when the session is negotiated.</returns>
    /// <exception cref="QmpNegotiationException">
    /// The peer is not a QMP server or refused, or sent no greeting, or no reply to
    /// <c>qmp_capabilities</c>, within <see cref="QmpClientOptions.GreetingTimeout"/> (a
    /// <see cref="TimeoutException"/> inside).
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired, even when the greeting timeout ran out too.</exception>
    protected override async Task EstablishSessionAsync(HandshakeContext<QmpMessage> handshake, CancellationToken cancellationToken)
    {
        _quitSucceeded = false;
        _quitWritten = false;
        OutOfBandEnabled = false;
        var early = new List<QmpEvent>();
        var greetingMessage = await ReceiveGreetingAsync(handshake, early, cancellationToken).ConfigureAwait(false);
        if (greetingMessage.Kind != QmpMessageKind.Greeting)
        {
            throw new QmpNegotiationException(
                $"expected a greeting, got a {greetingMessage.Kind} message",
                new QmpParseException("Not a QMP greeting", QmpParseException.Clip(greetingMessage.ToString())));
        }

        var greeting = Greeting = greetingMessage.ToGreeting();

        var enableOutOfBand = _options.EnableOutOfBand && greeting.OffersOutOfBand;
        var arguments = enableOutOfBand ? CapabilityArguments : (JsonElement?)null;
        var id = Interlocked.Increment(ref _nextId);
        try
        {
            await handshake.SendAsync(QmpMessage.Command(CapabilitiesCommand, arguments, IdElement(id)), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException or System.Net.Sockets.SocketException)
        {
            throw new QmpNegotiationException(
                ex is EndOfStreamException ? "the peer closed the connection while sending qmp_capabilities" : "the connection failed while sending qmp_capabilities",
                ex);
        }
        while (true)
        {
            var reply = await ReceiveWithinGreetingTimeoutAsync(
                handshake,
                early,
                "waiting for the qmp_capabilities reply",
                seconds => $"no reply to qmp_capabilities within {seconds}",
                "the qmp_capabilities reply",
                cancellationToken).ConfigureAwait(false);
            switch (reply.Kind)
            {
                case QmpMessageKind.Return when IdEquals(reply.Id, id):
                    OutOfBandEnabled = enableOutOfBand;
                    Deliver(early);
                    return;
                case QmpMessageKind.Error:
                    throw new QmpNegotiationException(
                        "the server refused qmp_capabilities",
                        new QmpExecuteException(CapabilitiesCommand, reply.ErrorClass!, reply.ErrorDescription!));
                default:
                    throw new QmpNegotiationException(
                        $"expected the qmp_capabilities reply, got a {reply.Kind} message",
                        new QmpParseException("Unexpected message during negotiation", QmpParseException.Clip(reply.ToString())));
            }
        }
    }

    /// <summary>Routes replies to their executes and events to the listeners.</summary>
    /// <param name="message">The inbound message.</param>
    /// <param name="context">Unused: the client sends nothing from its read loop.</param>
    /// <param name="cancellationToken">Fires when the session is torn down.</param>
    /// <returns>A completed task: routing never waits.</returns>
    /// <exception cref="QmpParseException">The server sent a reply without an id, a greeting or a command.</exception>
    protected override ValueTask OnMessageAsync(QmpMessage message, MessageContext<QmpMessage> context, CancellationToken cancellationToken)
    {
        switch (message.Kind)
        {
            case QmpMessageKind.Event:
                Deliver(message.ToEvent());
                break;
            case QmpMessageKind.Return or QmpMessageKind.Error:
                RouteReply(message);
                break;
            default:
                throw new QmpParseException($"Unexpected {message.Kind} message from the server", QmpParseException.Clip(message.ToString()));
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Refuses every command after <c>quit</c> (each fails with <see cref="QmpExecuteInterruptedException"/>,
    /// unsent): this runs as each message is framed, in the order they are written, so no command
    /// reaches the server after <c>quit</c>, however many callers execute at once.
    /// </summary>
    /// <param name="message">The outbound message.</param>
    /// <returns>The message, unchanged.</returns>
    /// <exception cref="QmpExecuteInterruptedException">The message is a command and <c>quit</c> was already sent.</exception>
    protected override QmpMessage OnOutbound(QmpMessage message)
    {
        if (message.Kind == QmpMessageKind.Command)
        {
            if (_quitWritten)
            {
                throw new QmpExecuteInterruptedException(message.CommandName!, "quit was sent, so the server is exiting: the command was not sent.", null);
            }

            _quitWritten = message.IsCommandNamed(QuitCommand);
        }

        return base.OnOutbound(message);
    }

    /// <summary>Fails every pending execute and ends every listener.</summary>
    /// <param name="rootCause">The error that ended the session, or null.</param>
    /// <returns>A completed task.</returns>
    protected override ValueTask OnSessionEndedAsync(Exception? rootCause)
    {
        foreach (var (id, pending) in _pending)
        {
            if (!_pending.TryRemove(id, out _))
            {
                continue;
            }

            if (pending.Command == QuitCommand && rootCause is null && _quitsPending > 0)
            {
                // The server closed the connection on quit without replying: the quit took effect,
                // and there is no reply to report (none is made up).
                pending.Reply.TrySetResult(null);
            }
            else
            {
                pending.Reply.TrySetException(new QmpExecuteInterruptedException(pending.Command, rootCause));

                // Observed here: the caller may have stopped waiting (cancelled, timed out, its send
                // refused) and must not leave an unobserved faulted task behind. A caller still
                // awaiting the reply gets the exception all the same.
                _ = pending.Reply.Task.Exception;
            }
        }

        List<QmpEventListener> listeners;
        lock (_listenersGate)
        {
            listeners = _listeners;
            _listeners = [];
        }

        foreach (var listener in listeners)
        {
            listener.Complete(rootCause);
        }

        return ValueTask.CompletedTask;
    }

    private static readonly JsonElement CapabilityArguments = QmpJson.Parse("""{"enable":["oob"]}""");

    private static JsonElement IdElement(long id) => QmpJson.Number(id);

    private static bool IdEquals(JsonElement? id, long expected)
        => id is { ValueKind: JsonValueKind.Number } value && value.TryGetInt64(out var actual) && actual == expected;

    private static JsonElement ReturnValueOf(string command, QmpMessage reply) => reply.Kind switch
    {
        QmpMessageKind.Return => reply.ReturnValue!.Value,
        QmpMessageKind.Error => throw new QmpExecuteException(command, reply.ErrorClass!, reply.ErrorDescription!),
        _ => throw new QmpParseException($"Unexpected {reply.Kind} reply", QmpParseException.Clip(reply.ToString())),
    };

    private static QmpClientOptions Validated(QmpClientOptions? options)
    {
        options ??= QmpClientOptions.Default;
        options.Validate();
        return options;
    }

    /// <summary>
    /// Reads up to the greeting within <see cref="QmpClientOptions.GreetingTimeout"/>: when it runs
    /// out first, raises <see cref="QmpNegotiationException"/> wrapping a <see cref="TimeoutException"/>;
    /// <paramref name="cancellationToken"/> firing stays a cancellation.
    /// </summary>
    private async Task<QmpMessage> ReceiveGreetingAsync(HandshakeContext<QmpMessage> handshake, List<QmpEvent> early, CancellationToken cancellationToken)
    {
        const string Stage = "waiting for the greeting";
        return await ReceiveWithinGreetingTimeoutAsync(
            handshake,
            early,
            Stage,
            seconds => $"no QMP greeting within {seconds}: another client may hold the monitor (QEMU serves one client per monitor)",
            "the greeting",
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Receives the next negotiation message within <see cref="QmpClientOptions.GreetingTimeout"/>:
    /// when it runs out first, raises <see cref="QmpNegotiationException"/> with the message
    /// <paramref name="describeTimeout"/> makes of the limit, wrapping a <see cref="TimeoutException"/>
    /// naming <paramref name="awaited"/>; <paramref name="cancellationToken"/> firing stays a cancellation.
    /// </summary>
    private async Task<QmpMessage> ReceiveWithinGreetingTimeoutAsync(HandshakeContext<QmpMessage> handshake, List<QmpEvent> early, string stage, Func<string, string> describeTimeout, string awaited, CancellationToken cancellationToken)
    {
        var limit = _options.GreetingTimeout;
        if (limit == Timeout.InfiniteTimeSpan)
        {
            return await ReceiveNegotiationAsync(handshake, early, stage, cancellationToken).ConfigureAwait(false);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            return await ReceiveNegotiationAsync(handshake, early, stage, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Only the timer can have fired: the caller's cancellation (or a disconnect) is not ours to rename.
            var seconds = $"{limit.TotalSeconds:0.###} s";
            throw new QmpNegotiationException(describeTimeout(seconds), new TimeoutException($"GreetingTimeout ({seconds}) ran out before {awaited} arrived.", ex));
        }
    }

    private async Task<QmpMessage> ReceiveNegotiationAsync(HandshakeContext<QmpMessage> handshake, List<QmpEvent> early, string stage, CancellationToken cancellationToken)
    {
        while (true)
        {
            QmpMessage message;
            try
            {
                message = await handshake.ReceiveAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ProtocolException or EndOfStreamException or IOException or System.Net.Sockets.SocketException)
            {
                var reason = ex switch
                {
                    EndOfStreamException or IncompleteFrameException => $"the peer closed the connection while {stage}",
                    IOException or System.Net.Sockets.SocketException => $"the connection failed while {stage}",
                    FrameTooLargeException => $"the peer sent an oversize message while {stage}",
                    _ => $"the peer is not a QMP server ({stage})",
                };
                throw new QmpNegotiationException(reason, ex);
            }

            if (message.Kind != QmpMessageKind.Event)
            {
                return message;
            }

            // Kept, and delivered once negotiated: QEMU may emit events this early.
            early.Add(message.ToEvent());
        }
    }

    private void RouteReply(QmpMessage reply)
    {
        if (reply.Id is not { } id)
        {
            // Most likely the server could not parse something we sent: it belongs to no execute.
            throw new QmpParseException("The server sent a reply without an id", QmpParseException.Clip(reply.ToString()));
        }

        if (id.ValueKind == JsonValueKind.Number && id.TryGetInt64(out var key) && _pending.TryRemove(key, out var pending))
        {
            if (pending.Command == QuitCommand && reply.Kind == QmpMessageKind.Return)
            {
                // Set here, in the read loop, before it can see the server close the connection.
                _quitSucceeded = true;
            }
            else if (pending.Command == QuitCommand)
            {
                // The server refused quit: it is not exiting, and commands may be sent again.
                _quitWritten = false;
            }

            pending.Reply.TrySetResult(reply);
            return;
        }

        // A reply to a cancelled or timed-out execute: QMP says to drop replies with unknown ids.
        QmpClientLog.UnknownReplyDropped(Logger, id.GetRawText());
    }

    private void Deliver(QmpEvent qmpEvent)
    {
        foreach (var listener in Volatile.Read(ref _listeners))
        {
            listener.Deliver(qmpEvent);
        }
    }

    private void Deliver(List<QmpEvent> events)
    {
        foreach (var qmpEvent in events)
        {
            Deliver(qmpEvent);
        }
    }

    private void Unregister(QmpEventListener listener)
    {
        lock (_listenersGate)
        {
            _listeners = [.. _listeners.Where(l => l != listener)];
        }
    }

    private sealed class PendingExecute(string command)
    {
        public string Command { get; } = command;

        /// <summary>The reply; null when the server closed the connection after quit without one.</summary>
        public TaskCompletionSource<QmpMessage?> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
