using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// Upper half: establishing a session (connect, listen/accept, open) and the handshake.
public abstract partial class PipeProtocol<TMessage>
{
    /// <summary>
    /// Connects to a server and starts the session: transport, then
    /// <see cref="EstablishSessionAsync"/>, then the loops.
    /// </summary>
    /// <param name="endPoint">A <see cref="UnixDomainSocketEndPoint"/>, <see cref="IPEndPoint"/> or <see cref="DnsEndPoint"/>.</param>
    /// <param name="tls">TLS client options, or <see langword="null"/> for a plain connection.</param>
    /// <param name="cancellationToken">Cancels the attempt, including the handshake.</param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Running"/>.</returns>
    /// <exception cref="ArgumentException">The endpoint type is not supported; the runstate is unchanged.</exception>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">
    /// The connection ("Failed to establish connection"; a <see cref="TimeoutException"/> inside
    /// when <see cref="PipeProtocolOptions.ConnectTimeout"/> ran out) or the handshake ("Failed to
    /// establish session") failed; the runstate is back to <see cref="Runstate.Idle"/> and nothing is left open.
    /// </exception>
    /// <exception cref="OperationCanceledException">
    /// <paramref name="cancellationToken"/> fired or <see cref="DisconnectAsync"/> was called
    /// meanwhile; the runstate is back to <see cref="Runstate.Idle"/>.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The object was disposed.</exception>
    public async Task ConnectAsync(EndPoint endPoint, SslClientAuthenticationOptions? tls = null, CancellationToken cancellationToken = default)
    {
        SocketTransport.ThrowIfUnsupported(endPoint);
        ThrowIfDescriptorsCannotPass(endPoint, tls is not null);
        var attempt = BeginAttempt();
        PipeProtocolLog.Connecting(Logger, "Connecting", AddressParser.Format(endPoint));
        await EstablishAsync(attempt, token => ConnectTransportAsync(endPoint, tls, token), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Connects to a server given as text: <c>unix:/path</c>, <c>/path</c>, <c>host:port</c> or
    /// <c>[v6]:port</c> (see <see cref="AddressParser"/>). Otherwise as <see cref="ConnectAsync(EndPoint, SslClientAuthenticationOptions?, CancellationToken)"/>.
    /// </summary>
    /// <param name="address">The address.</param>
    /// <param name="tls">TLS client options, or <see langword="null"/> for a plain connection.</param>
    /// <param name="cancellationToken">Cancels the attempt, including the handshake.</param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Running"/>.</returns>
    /// <exception cref="FormatException">The address is malformed; the runstate is unchanged.</exception>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">The connection or the handshake failed; the runstate is <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="OperationCanceledException">The attempt was cancelled; the runstate is <see cref="Runstate.Idle"/>.</exception>
    public Task ConnectAsync(string address, SslClientAuthenticationOptions? tls = null, CancellationToken cancellationToken = default)
        => ConnectAsync(AddressParser.Parse(address), tls, cancellationToken);

    /// <summary>
    /// Binds and listens on <paramref name="endPoint"/> and returns the bound address (so port 0
    /// works); the runstate becomes and stays <see cref="Runstate.Connecting"/> until
    /// <see cref="AcceptAsync"/> or <see cref="DisconnectAsync"/>.
    /// </summary>
    /// <param name="endPoint">Where to listen: a Unix socket path or an IP address and port.</param>
    /// <param name="tls">TLS server options for the connection to accept, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Cancels binding.</param>
    /// <returns>The bound endpoint.</returns>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">Binding failed (address in use…); the runstate is <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the runstate is <see cref="Runstate.Idle"/>.</exception>
    public async Task<EndPoint> StartServerAsync(EndPoint endPoint, SslServerAuthenticationOptions? tls = null, CancellationToken cancellationToken = default)
    {
        SocketTransport.ThrowIfUnsupported(endPoint);
        ThrowIfDescriptorsCannotPass(endPoint, tls is not null);
        SocketListener? bound = null;
        await AttemptAsync(
            BeginAttempt(),
            async token =>
            {
                var listener = bound = await SocketListener.BindAsync(endPoint, _options.ListenBacklog, token).ConfigureAwait(false);
                lock (_gate)
                {
                    MoveTo(Connecting with { Listener = listener, ServerTls = tls });
                }

                token.ThrowIfCancellationRequested();
                PipeProtocolLog.Listening(Logger, AddressParser.Format(listener.LocalEndPoint));
            },
            establish: null,
            cancellationToken).ConfigureAwait(false);
        return bound!.LocalEndPoint;
    }

    /// <summary>
    /// Binds and listens on an address given as text (see <see cref="AddressParser"/>). Otherwise as
    /// <see cref="StartServerAsync(EndPoint, SslServerAuthenticationOptions?, CancellationToken)"/>.
    /// </summary>
    /// <param name="address">Where to listen.</param>
    /// <param name="tls">TLS server options for the connection to accept, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Cancels binding.</param>
    /// <returns>The bound endpoint.</returns>
    /// <exception cref="FormatException">The address is malformed; the runstate is unchanged.</exception>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">Binding failed; the runstate is <see cref="Runstate.Idle"/>.</exception>
    public Task<EndPoint> StartServerAsync(string address, SslServerAuthenticationOptions? tls = null, CancellationToken cancellationToken = default)
        => StartServerAsync(AddressParser.Parse(address), tls, cancellationToken);

    /// <summary>
    /// Accepts exactly one peer on the listener of <see cref="StartServerAsync(EndPoint, SslServerAuthenticationOptions?, CancellationToken)"/>,
    /// stops listening (a further, extraneous connection is closed, never served), and starts the session.
    /// </summary>
    /// <param name="cancellationToken">Cancels waiting for a peer and the handshake.</param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Running"/>.</returns>
    /// <exception cref="StateException">
    /// The runstate is not <see cref="Runstate.Connecting"/> with a listener waiting (no
    /// <c>StartServerAsync</c> yet, or another connect or accept under way).
    /// </exception>
    /// <exception cref="ConnectException">Accepting or the handshake failed; the runstate is <see cref="Runstate.Idle"/> and the listener closed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the runstate is <see cref="Runstate.Idle"/> and the listener closed.</exception>
    public async Task AcceptAsync(CancellationToken cancellationToken = default)
    {
        ConnectAttempt attempt;
        SocketListener listener;
        SslServerAuthenticationOptions? tls;
        lock (_gate)
        {
            Require(Runstate.Connecting);
            if (_state is not ConnectingState { Listener: { } waiting, Attempt: null } connecting)
            {
                throw NewStateException(Runstate.Connecting);
            }

            (listener, tls) = (waiting, connecting.ServerTls);
            MoveTo(connecting with { Attempt = attempt = new ConnectAttempt() });
        }

        await EstablishAsync(
            attempt,
            async token =>
            {
                var connection = await listener.AcceptAsync(tls, TransportOptions, token).ConfigureAwait(false);
                listener.Dispose();
                return connection;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// <see cref="StartServerAsync(EndPoint, SslServerAuthenticationOptions?, CancellationToken)"/> then <see cref="AcceptAsync"/>.
    /// </summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <param name="tls">TLS server options, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Cancels binding, waiting and the handshake.</param>
    /// <returns>The endpoint that was bound, once the runstate is <see cref="Runstate.Running"/>.</returns>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">Binding, accepting or the handshake failed; the runstate is <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the runstate is <see cref="Runstate.Idle"/>.</exception>
    public async Task<EndPoint> StartServerAndAcceptAsync(EndPoint endPoint, SslServerAuthenticationOptions? tls = null, CancellationToken cancellationToken = default)
    {
        var bound = await StartServerAsync(endPoint, tls, cancellationToken).ConfigureAwait(false);
        await AcceptAsync(cancellationToken).ConfigureAwait(false);
        return bound;
    }

    /// <summary>
    /// Starts a session on an already connected socket; the session takes ownership of it.
    /// </summary>
    /// <param name="socket">A connected stream socket (TCP, Unix-domain, one end of a socket pair).</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Running"/>.</returns>
    /// <exception cref="ArgumentException">The socket is not a connected stream socket; the runstate is unchanged.</exception>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">The handshake failed; the socket is closed and the runstate is <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the socket is closed and the runstate is <see cref="Runstate.Idle"/>.</exception>
    public Task OpenAsync(Socket socket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (socket.SocketType != SocketType.Stream || !socket.Connected)
        {
            throw new ArgumentException("The socket must be a connected stream socket.", nameof(socket));
        }

        ThrowIfDescriptorsCannotPass(socket);
        return OpenAsync(() => SocketTransport.Open(socket, TransportOptions), cancellationToken);
    }

    /// <summary>
    /// Starts a session on an open, readable and writable stream (e.g. an authenticated
    /// <see cref="SslStream"/>); the session takes ownership of it.
    /// </summary>
    /// <param name="stream">The stream.</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Running"/>.</returns>
    /// <exception cref="ArgumentException">The stream cannot both read and write; the runstate is unchanged.</exception>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">The handshake failed; the stream is disposed and the runstate is <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the stream is disposed and the runstate is <see cref="Runstate.Idle"/>.</exception>
    public Task OpenAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead || !stream.CanWrite)
        {
            throw new ArgumentException("The stream must be readable and writable.", nameof(stream));
        }

        ThrowIfDescriptorsCannotPass(false, "a stream");
        return OpenAsync(() => SocketTransport.Open(stream, TransportOptions), cancellationToken);
    }

    /// <summary>
    /// Starts a session on an existing duplex pipe (e.g. a pair of in-memory <see cref="Pipe"/>s).
    /// The session reads <c>Input</c>, writes <c>Output</c>, and completes both when it ends.
    /// </summary>
    /// <param name="pipe">The pipe.</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Running"/>.</returns>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">The handshake failed; the pipe is completed and the runstate is <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the pipe is completed and the runstate is <see cref="Runstate.Idle"/>.</exception>
    public Task OpenAsync(IDuplexPipe pipe, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipe);
        ThrowIfDescriptorsCannotPass(false, "a pipe");
        return OpenAsync(() => SocketTransport.Open(pipe, TransportOptions), cancellationToken);
    }

    /// <summary>
    /// Starts a session on a transport connection of any kind: the plug-in point for custom
    /// transports. The session takes ownership of <paramref name="connection"/>.
    /// </summary>
    /// <param name="connection">The connection.</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    /// <returns>A task that completes when the runstate is <see cref="Runstate.Running"/>.</returns>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="ConnectException">The handshake failed; the connection is aborted and the runstate is <see cref="Runstate.Idle"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the connection is aborted and the runstate is <see cref="Runstate.Idle"/>.</exception>
    public Task OpenAsync(TransportConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ThrowIfDescriptorsCannotPass(connection is UnixDescriptorConnection, "a connection opened without descriptor passing");
        return OpenAsync(() => SocketTransport.IsOwn(connection) ? connection : SocketTransport.Adopt(connection, TransportOptions), cancellationToken);
    }

    /// <summary>
    /// The handshake, run after the transport is up and before the loops start (QEMU's
    /// <c>aqmp</c> <c>_establish_session</c>, minus starting the loops, which the base class does
    /// afterwards). The runstate is <see cref="Runstate.Connecting"/>; <paramref name="handshake"/>
    /// reads messages directly and writes and flushes them directly. The base does nothing.
    /// </summary>
    /// <param name="handshake">This handshake's own access to the connection; valid until the method returns.</param>
    /// <param name="cancellationToken">Fires when the caller cancels or <see cref="DisconnectAsync"/> is called.</param>
    /// <returns>A task that completes when the session is established.</returns>
    /// <remarks>
    /// Whatever this throws fails the attempt with a <see cref="ConnectException"/> ("Failed to
    /// establish session"), a timeout of its own included; only the caller's cancellation or a
    /// <see cref="DisconnectAsync"/> surfaces as <see cref="OperationCanceledException"/>.
    /// Sending and receiving is reserved to <paramref name="handshake"/>: <see cref="SendAsync"/>
    /// meanwhile, from any caller, raises <see cref="StateException"/> (<see cref="Runstate.Connecting"/>)
    /// and writes nothing. Messages the handshake leaves unread are delivered to
    /// <see cref="OnMessageAsync"/> once the session runs.
    /// </remarks>
    protected virtual Task EstablishSessionAsync(HandshakeContext<TMessage> handshake, CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task OpenAsync(Func<TransportConnection> open, CancellationToken cancellationToken)
        => await EstablishAsync(BeginAttempt(), _ => ValueTask.FromResult(open()), cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Connects the transport within <see cref="PipeProtocolOptions.ConnectTimeout"/>: when it runs
    /// out first, raises <see cref="TimeoutException"/> (which the connection phase's guard wraps);
    /// <paramref name="cancellationToken"/> firing stays a cancellation.
    /// </summary>
    private async ValueTask<TransportConnection> ConnectTransportAsync(EndPoint endPoint, SslClientAuthenticationOptions? tls, CancellationToken cancellationToken)
    {
        var limit = _options.ConnectTimeout;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            return await SocketTransport.ConnectAsync(endPoint, tls, TransportOptions, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // Only the timer can have fired: whatever the cancellation made the socket or TLS throw.
            throw new TimeoutException($"No connection to {AddressParser.Format(endPoint)} within {limit.TotalSeconds:0.###} s (ConnectTimeout).", ex);
        }
    }

    /// <summary>The state of the attempt under way. Call under the gate, or from the attempt's own flow.</summary>
    private ConnectingState Connecting => (ConnectingState)_state;

    /// <summary>Checks the runstate is <see cref="Runstate.Idle"/> and enters <see cref="Runstate.Connecting"/> with a new attempt.</summary>
    private ConnectAttempt BeginAttempt()
    {
        lock (_gate)
        {
            Require(Runstate.Idle);
            var attempt = new ConnectAttempt();
            MoveTo(new ConnectingState { Attempt = attempt });
            return attempt;
        }
    }

    /// <summary>Opens the transport, runs the handshake, and starts the session, rolling back on any failure.</summary>
    private Task EstablishAsync(ConnectAttempt attempt, Func<CancellationToken, ValueTask<TransportConnection>> openTransport, CancellationToken cancellationToken)
    {
        return AttemptAsync(
            attempt,
            async token =>
            {
                var connection = await openTransport(token).ConfigureAwait(false);
                lock (_gate)
                {
                    MoveTo(Connecting with { Listener = null, ServerTls = null, Connection = connection, Reader = new(connection, _framer) });
                }

                // Checked only now, so that a connection handed in by OpenAsync is owned (and
                // closed by the rollback) even when the attempt was cancelled before it started.
                token.ThrowIfCancellationRequested();
                PipeProtocolLog.Connected(Logger, connection.ToString());
            },
            HandshakeAndRunAsync,
            cancellationToken);

        async Task HandshakeAndRunAsync(CancellationToken token)
        {
            SessionFlow.Enter(this, SessionFlowRole.Handshake);
            _framer.Reset();
            var connecting = Connecting;
            var handshake = new HandshakeContext<TMessage>(this, connecting.Reader!);
            try
            {
                await EstablishSessionAsync(handshake, token).ConfigureAwait(false);
            }
            finally
            {
                handshake.End();
            }

            lock (_gate)
            {
                // A disconnect or cancellation that raced with a handshake that ignored it still wins.
                token.ThrowIfCancellationRequested();
                MoveTo(StartSession(Connecting));
            }
        }
    }

    /// <summary>
    /// Runs an attempt's connection phase, then its session phase if any (QEMU aqmp's
    /// <c>_session_guard</c>): on failure, rolls back to <see cref="Runstate.Idle"/>, then raises
    /// cancellation as it is and anything else as a <see cref="ConnectException"/> for the phase
    /// that failed. However it ends, leaves the attempt finished, waking a disconnect that waits for it.
    /// </summary>
    private async Task AttemptAsync(ConnectAttempt attempt, Func<CancellationToken, Task> connect, Func<CancellationToken, Task>? establish, CancellationToken cancellationToken)
    {
        var phase = ConnectException.ConnectionPhase;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, attempt.Abort.Token);
        try
        {
            await connect(linked.Token).ConfigureAwait(false);
            phase = ConnectException.SessionPhase;
            if (establish is not null)
            {
                await establish(linked.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            PipeProtocolLog.ConnectFailed(Logger, phase, PipeProtocolLog.Summarize(ex), ex);
            RollBack(attempt);
            if (cancellationToken.IsCancellationRequested)
            {
                // The caller's own cancellation, carrying the caller's token (whatever the
                // cancellation made the socket or the handshake throw).
                throw new OperationCanceledException("The connection attempt was cancelled.", ex, cancellationToken);
            }

            if (linked.IsCancellationRequested)
            {
                throw new OperationCanceledException("The connection attempt was cancelled by DisconnectAsync.", ex, attempt.Abort.Token);
            }

            if (ex is ConnectException)
            {
                throw;
            }

            throw new ConnectException(phase, ex);
        }
        finally
        {
            lock (_gate)
            {
                if (_state is ConnectingState { } connecting && connecting.Attempt == attempt)
                {
                    // Bound and listening: the listener waits for AcceptAsync.
                    MoveTo(connecting with { Attempt = null });
                }
            }

            attempt.Finished.TrySetResult();
        }
    }

    /// <summary>
    /// Undoes a failed attempt: Connecting → Disconnecting → Idle, closing whatever it opened; the
    /// attempt is then finished.
    /// </summary>
    private void RollBack(ConnectAttempt attempt)
    {
        ConnectingState connecting;
        lock (_gate)
        {
            connecting = Connecting;
            MoveTo(new DisconnectingState(Teardown: null) { Attempt = attempt });
        }

        connecting.Listener?.Dispose();
        connecting.Connection?.Abort();
        lock (_gate)
        {
            MoveTo(new IdleState());
        }

        attempt.Finished.TrySetResult();
    }

    /// <summary>A connection attempt under way: how to abort it, and when it has finished.</summary>
    private sealed class ConnectAttempt
    {
        // Not disposed: a disconnect may cancel it at any time, even after the attempt finished.
        public CancellationTokenSource Abort { get; } = new();

        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
