using Microsoft.Win32.SafeHandles;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Transports;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// A QMP server that behaves like QEMU 7.2's monitor of <c>qemu-system-x86_64 -M none</c>: it
/// greets, negotiates capabilities, and knows every command of QEMU 7.2's QAPI schema (shipped
/// with this package). It checks each command's arguments against the schema with QEMU's error
/// texts, and models <c>query-status</c>, <c>stop</c>/<c>cont</c> (emitting <c>STOP</c>/<c>RESUME</c>),
/// <c>system_reset</c> (<c>RESET</c>), <c>system_powerdown</c> (<c>POWERDOWN</c>), <c>quit</c>
/// (emitting <c>SHUTDOWN</c>, then closing), <c>query-version</c>, <c>query-name</c>,
/// <c>query-uuid</c>, <c>query-kvm</c>, <c>query-yank</c>, <c>query-commands</c>,
/// <c>query-qmp-schema</c> and <c>human-monitor-command</c> (<c>help</c>, <c>info</c>,
/// <c>info status</c>/<c>version</c>/<c>kvm</c>/<c>name</c>/<c>uuid</c>, <c>stop</c>, <c>cont</c>).
/// A schema command it does not model, given valid arguments, gets the <c>GenericError</c>
/// "The command NAME is not simulated by the Aqmp.Pipelines QMP simulator"; a command outside
/// the schema gets QEMU's <c>CommandNotFound</c>. Register or replace commands with
/// <see cref="Handle"/>. For tests, for trying tools without QEMU, and as the <c>aqmp</c> tool's
/// default peer.
/// </summary>
/// <remarks>
/// <para>
/// Like QEMU's monitor, it serves one client at a time by default: further clients wait in the
/// listen backlog until the current one disconnects, or until it is disconnected for not
/// negotiating within <see cref="QmpSimulatorOptions.NegotiationTimeout"/>. With
/// <see cref="QmpSimulatorOptions.MaximumClients"/> above one it serves that many at once, as QEMU
/// serves several <c>-qmp</c> monitors: all are monitors of the one simulated machine, and every
/// event (a <c>stop</c> from one client, <see cref="EmitEventAsync"/>) reaches every client that
/// has negotiated capabilities; a client still negotiating receives none. Commands of one client
/// run in order, one at a time; once the client negotiated <c>oob</c>, an <c>exec-oob</c> command
/// runs at once, beside the in-band command running then (at most eight in-band requests wait;
/// reading stops while that many do, as in QEMU). Commands of different clients run concurrently.
/// </para>
/// <para>
/// Once started, it keeps accepting until <c>quit</c> (with <see cref="QmpSimulatorOptions.StopOnQuit"/>:
/// once the quitting client has its reply, the other clients are disconnected, as QEMU's exit
/// closes every monitor), <see cref="StopAsync"/> or <see cref="DisposeAsync"/>. A transient accept error (out of
/// descriptors or memory, a client that aborted before being accepted) is logged as a warning and
/// retried after a backoff of 10 ms doubling up to 1 s, reset by the next successful accept. Any
/// other failure stops the simulator and faults <see cref="Completion"/> with it.
/// </para>
/// </remarks>
public sealed class QmpSimulator : IAsyncDisposable
{
    private readonly QmpSimulatorOptions _options;
    private readonly ILoggerFactory? _loggerFactory;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, QmpCommandHandler> _handlers = new(StringComparer.Ordinal);
    private readonly SimulatedMachine _machine = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<QmpSimulatorStopReason> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConnectedClients _clients;
    private SocketListener? _listener;
    private int _sessionsServed;
    private volatile bool _quitRequested;
    private bool _passesDescriptors;

    /// <summary>Creates a simulator with the built-in commands; it serves nothing until started.</summary>
    /// <param name="options">Settings; <see cref="QmpSimulatorOptions.Default"/> when null.</param>
    /// <param name="loggerFactory">Where the sessions log; nothing is logged when null.</param>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <see cref="QmpSimulatorOptions.NegotiationTimeout"/> is zero or negative (and not infinite), or
    /// <see cref="QmpSimulatorOptions.MaximumClients"/> is below one.
    /// </exception>
    public QmpSimulator(QmpSimulatorOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        _options = options ?? QmpSimulatorOptions.Default;
        if (_options.NegotiationTimeout != Timeout.InfiniteTimeSpan)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_options.NegotiationTimeout, TimeSpan.Zero, "options.NegotiationTimeout");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaximumClients, 1, "options.MaximumClients");
        _clients = new ConnectedClients(_options.MaximumClients);

        _loggerFactory = loggerFactory;
        _logger = loggerFactory?.CreateLogger<QmpSimulator>() ?? (ILogger)NullLogger.Instance;
        SimulatorCommands.Register(this, _machine, _options.Version, () => _quitRequested = true);
        SimulatorDescriptorCommands.Register(this, Descriptors, _machine);
    }

    /// <summary>The address the simulator listens on, once started.</summary>
    public EndPoint? LocalEndPoint => _listener?.LocalEndPoint;

    /// <summary>Whether the simulated machine runs (<c>cont</c>) or not (<c>stop</c>, or <c>system_reset</c> while stopped).</summary>
    public bool IsRunning => _machine.IsRunning;

    /// <summary>How many client sessions have been served (negotiated or not).</summary>
    public int SessionsServed => Volatile.Read(ref _sessionsServed);

    /// <summary>
    /// The names of the commands the simulator knows, in ordinal order: every command of QEMU
    /// 7.2's schema (<c>qmp_capabilities</c> included, modelled or not) and every registered one.
    /// </summary>
    public IReadOnlyCollection<string> Commands => [.. CommandsAsListed().Order(StringComparer.Ordinal)];

    /// <summary>
    /// Completes when the simulator has stopped, with why: <see cref="QmpSimulatorStopReason.Quit"/>
    /// after a client's <c>quit</c> (with <see cref="QmpSimulatorOptions.StopOnQuit"/>), or
    /// <see cref="QmpSimulatorStopReason.Stopped"/> after <see cref="StopAsync"/> or disposal. It faults
    /// with the exception that ended accepting when the simulator stopped for any other reason (the
    /// listener is closed then); it never completes as cancelled.
    /// </summary>
    public Task<QmpSimulatorStopReason> Completion => _completion.Task;

    /// <summary>
    /// Registers (or replaces) the handler of a command, built-in ones included. When the command is
    /// in QEMU 7.2's schema, its arguments are checked against the schema before the handler runs,
    /// and invalid ones get QEMU's <c>GenericError</c> without running it; other commands reach
    /// their handler with whatever arguments were sent. A handler runs alone among the client's
    /// in-band commands; the handler of a command the schema allows out of band, run with
    /// <c>exec-oob</c>, may run while an in-band handler does.
    /// </summary>
    /// <param name="command">The command name.</param>
    /// <param name="handler">Runs the command.</param>
    public void Handle(string command, QmpCommandHandler handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        ArgumentNullException.ThrowIfNull(handler);
        _handlers[command] = handler;
    }

    /// <summary>Listens on <paramref name="endPoint"/> and serves clients in the background until stopped.</summary>
    /// <param name="endPoint">Where to listen (TCP port 0 picks a free port).</param>
    /// <param name="cancellationToken">Cancels binding.</param>
    /// <returns>The bound endpoint.</returns>
    /// <exception cref="InvalidOperationException">The simulator was already started.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">The address cannot be bound.</exception>
    public async Task<EndPoint> StartAsync(EndPoint endPoint, CancellationToken cancellationToken = default)
    {
        if (_listener is not null)
        {
            throw new InvalidOperationException("The simulator is already started.");
        }

        _listener = await SocketListener.BindAsync(endPoint, backlog: Math.Max(16, _options.MaximumClients), _options.ReplaceStaleSocket, cancellationToken).ConfigureAwait(false);

        // As QEMU's Unix-socket monitor: clients may pass descriptors (getfd, add-fd).
        _passesDescriptors = endPoint is System.Net.Sockets.UnixDomainSocketEndPoint && OperatingSystem.IsLinux() && Environment.Is64BitProcess;
        _ = Task.Run(RunAcceptLoopAsync, CancellationToken.None);
        return _listener.LocalEndPoint;
    }

    /// <summary>Listens on an address given as text (see <see cref="AddressParser"/>).</summary>
    /// <param name="address">Where to listen.</param>
    /// <param name="cancellationToken">Cancels binding.</param>
    /// <returns>The bound endpoint.</returns>
    public Task<EndPoint> StartAsync(string address, CancellationToken cancellationToken = default)
        => StartAsync(AddressParser.Parse(address), cancellationToken);

    /// <summary>
    /// Serves one client over an existing duplex pipe (e.g. in-memory pipes in tests) until that
    /// session ends.
    /// </summary>
    /// <param name="pipe">The pipe.</param>
    /// <param name="cancellationToken">Ends the session.</param>
    /// <returns>A task that completes when the session has ended.</returns>
    public Task ServeAsync(IDuplexPipe pipe, CancellationToken cancellationToken = default)
        => ServeAsync(SocketTransport.Open(pipe), cancellationToken);

    /// <summary>Sends an event to every connected client that has negotiated capabilities.</summary>
    /// <param name="name">The event name.</param>
    /// <param name="data">Its data, or null.</param>
    /// <param name="cancellationToken">Stops waiting for a client's queue space.</param>
    /// <returns>True when at least one client had the event queued; false when none has negotiated (or all went away meanwhile).</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while a client's queue was full.</exception>
    public ValueTask<bool> EmitEventAsync(string name, JsonElement? data = null, CancellationToken cancellationToken = default)
        => _clients.SendToAllAsync(QmpMessage.Event(name, data, DateTimeOffset.UtcNow), cancellationToken);

    /// <summary>Stops listening and ends every client's session.</summary>
    /// <returns>A task that completes when the simulator has stopped.</returns>
    public async Task StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        await EndAllAsync().ConfigureAwait(false);
        _completion.TrySetResult(QmpSimulatorStopReason.Stopped);
    }

    /// <summary>Stops the simulator (see <see cref="StopAsync"/>).</summary>
    /// <returns>A task that completes when the simulator has stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        // The stop source is cancelled, not disposed: a client's service that is still finishing
        // may cancel it again, and a cancelled source with no timer holds nothing.
        await StopAsync().ConfigureAwait(false);
        Descriptors.Dispose();
    }

    /// <summary>The descriptors clients passed with <c>getfd</c> and <c>add-fd</c>, held as QEMU holds them.</summary>
    internal SimulatorDescriptors Descriptors { get; } = new();

    /// <summary>Whether a command is known: in QEMU 7.2's schema, or registered.</summary>
    internal bool Knows(string command) => QemuSchema.Qemu72.Command(command) is not null || _handlers.ContainsKey(command);

    /// <summary>Whether the schema lets <c>exec-oob</c> run a command (its <c>allow-oob</c> flag).</summary>
    internal static bool AllowsOutOfBand(string command) => QemuSchema.Qemu72.Command(command) is { AllowsOutOfBand: true };

    /// <summary>
    /// The known commands in the order <c>query-commands</c> lists them: registered commands
    /// outside the schema first (in ordinal order), then the schema's in QEMU's order.
    /// </summary>
    internal IEnumerable<string> CommandsAsListed()
    {
        var schema = QemuSchema.Qemu72;
        return _handlers.Keys.Where(name => schema.Command(name) is null).Order(StringComparer.Ordinal).Concat(schema.CommandsAsListed);
    }

    /// <summary>QEMU's refusal of a schema command's arguments, or null when they are valid or the command is not in the schema.</summary>
    internal static string? ArgumentRefusal(QmpMessage command)
    {
        var schema = QemuSchema.Qemu72;
        return schema.Command(command.CommandName!) is { } known ? QemuArgumentCheck.Refusal(schema, known.ArgumentType, command.Arguments) : null;
    }

    /// <summary>
    /// Runs a command and builds the reply (called by the server session's read loop): an unknown
    /// command gets <c>CommandNotFound</c>, invalid arguments QEMU's refusal, a schema command without
    /// a handler <see cref="QmpCommandError.NotSimulated"/>; otherwise the handler answers. The
    /// events the handler raises reach the other negotiated clients too; <paramref name="send"/>
    /// sends them to <paramref name="origin"/>, ahead of its reply.
    /// </summary>
    internal async ValueTask<QmpMessage> RunCommandAsync(QmpServerSession origin, QmpMessage command, Func<QmpMessage, CancellationToken, ValueTask> send, CancellationToken cancellationToken, Func<SafeFileHandle?>? takeDescriptor = null)
    {
        var name = command.CommandName!;
        var handled = _handlers.TryGetValue(name, out var handler);
        if (!handled && QemuSchema.Qemu72.Command(name) is null)
        {
            return QmpMessage.Error("CommandNotFound", $"The command {name} has not been found", command.Id);
        }

        if (ArgumentRefusal(command) is { } refusal)
        {
            return QmpMessage.Error("GenericError", refusal, command.Id);
        }

        if (!handled)
        {
            var notSimulated = QmpCommandError.NotSimulated("command " + name);
            return QmpMessage.Error(notSimulated.ErrorClass, notSimulated.Description, command.Id);
        }

        try
        {
            var context = new QmpCommandContext(this, command, (message, token) =>
            {
                _clients.SendToOthers(origin, message);
                return send(message, token);
            }, takeDescriptor);
            var value = await handler!(context, cancellationToken).ConfigureAwait(false);
            return QmpMessage.Return(value, command.Id);
        }
        catch (QmpCommandError error)
        {
            return QmpMessage.Error(error.ErrorClass, error.Description, command.Id);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return QmpMessage.Error("GenericError", ex.Message, command.Id);
        }
    }

    private async Task RunAcceptLoopAsync()
    {
        var logger = _logger;
        try
        {
            var transportOptions = _options.Session.ToTransportOptions(_options.Session.CreateSegmentPool()) with { AllowDescriptorPassing = _passesDescriptors };
            var loop = new SimulatorAcceptLoop(
                token => AcceptWhenServingLessAsync(transportOptions, token),
                StartServing,
                logger);
            await loop.RunAsync(_stop.Token).ConfigureAwait(false);
            _listener!.Dispose();
            await EndAllAsync().ConfigureAwait(false);
            _completion.TrySetResult(_quitRequested && _options.StopOnQuit ? QmpSimulatorStopReason.Quit : QmpSimulatorStopReason.Stopped);
        }
        catch (Exception ex)
        {
            QmpSimulatorLog.AcceptLoopFailed(logger, ex.Message, ex);
            _listener!.Dispose();
            await EndAllAsync().ConfigureAwait(false);
            _completion.TrySetException(ex);
        }
    }

    /// <summary>
    /// Accepts the next client once fewer than <see cref="QmpSimulatorOptions.MaximumClients"/> are
    /// served (until then, clients wait in the listen backlog). The slot taken is given back when
    /// the client's service ends.
    /// </summary>
    private async ValueTask<TransportConnection> AcceptWhenServingLessAsync(TransportOptions transportOptions, CancellationToken cancellationToken)
    {
        await _clients.WaitForSlotAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await _listener!.AcceptAsync(tls: null, transportOptions, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _clients.ReleaseSlot();
            throw;
        }
    }

    /// <summary>Serves an accepted client in the background, beside the others; the accept loop goes on.</summary>
    private Task<bool> StartServing(TransportConnection connection, CancellationToken cancellationToken)
    {
        _ = ServeAcceptedAsync(connection, cancellationToken);
        return Task.FromResult(true);
    }

    /// <summary>
    /// Serves one accepted client to the end, then gives back its slot. After a <c>quit</c> that
    /// stops the simulator, accepting stops before the slot is given back, so that no other client
    /// is accepted. Never faults: an unexpected failure stops the simulator with it.
    /// </summary>
    private async Task ServeAcceptedAsync(TransportConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            if (await ServeAsync(connection, cancellationToken, _passesDescriptors).ConfigureAwait(false) && _quitRequested && _options.StopOnQuit)
            {
                await _stop.CancelAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            QmpSimulatorLog.AcceptLoopFailed(_logger, ex.Message, ex);
            _completion.TrySetException(ex);
            await _stop.CancelAsync().ConfigureAwait(false);
        }
        finally
        {
            _clients.ReleaseSlot();
        }
    }

    /// <summary>Serves one client until its session ends.</summary>
    /// <returns>Whether the client's <c>quit</c> ended it.</returns>
    private async Task<bool> ServeAsync(TransportConnection connection, CancellationToken cancellationToken, bool passesDescriptors = false)
    {
        var session = new QmpServerSession(this, _options, _loggerFactory, passesDescriptors);
        Interlocked.Increment(ref _sessionsServed);
        _clients.Add(session);
        try
        {
            await session.OpenAsync(connection, cancellationToken).ConfigureAwait(false);
            if (!await NegotiatesInTimeAsync(session, cancellationToken).ConfigureAwait(false))
            {
                QmpSimulatorLog.ClientDidNotNegotiate(_logger, _options.NegotiationTimeout.TotalSeconds);
                await session.DisconnectAsync(cancellationToken).ConfigureAwait(false);
            }

            await session.Ended.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or Session.ConnectException)
        {
            // Stopped, or the client went away during the greeting: serve the next one.
        }
        finally
        {
            _clients.Remove(session);
            await EndQuietlyAsync(session).ConfigureAwait(false);
            if (_clients.Snapshot().Length == 0)
            {
                // As QEMU once no monitor is connected.
                Descriptors.ClientsGone(_machine.IsRunning);
            }
        }

        return session.AnsweredQuit;
    }

    /// <summary>Whether the client negotiated (or left) within <see cref="QmpSimulatorOptions.NegotiationTimeout"/>.</summary>
    private async Task<bool> NegotiatesInTimeAsync(QmpServerSession session, CancellationToken cancellationToken)
    {
        var limit = _options.NegotiationTimeout;
        if (limit == Timeout.InfiniteTimeSpan)
        {
            return true;
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var expired = Task.Delay(limit, deadline.Token);
        var first = await Task.WhenAny(session.Negotiated, session.Ended, expired).ConfigureAwait(false);
        await deadline.CancelAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return first != expired;
    }

    /// <summary>Ends every client's session.</summary>
    private Task EndAllAsync() => Task.WhenAll(_clients.Snapshot().Select(EndQuietlyAsync));

    private static async Task EndQuietlyAsync(QmpServerSession session)
    {
        try
        {
            await session.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A client that vanished is the simulator's normal business.
        }
    }
}
