using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Server;

// Listening and accepting: one accept loop per endpoint, each handing sockets to sessions at once.
public sealed partial class PipeProtocolServer<TMessage>
{
    private readonly Lock _listenGate = new();
    private readonly List<(SocketListener Listener, Task Loop)> _listeners = [];
    private readonly CancellationTokenSource _stopAccepting = new();

    /// <summary>How a listener's next socket is accepted; replaced by tests to inject accept errors.</summary>
    internal Func<SocketListener, CancellationToken, ValueTask<Socket>> AcceptSocket { get; set; } = static (listener, token) => listener.AcceptSocketAsync(token);

    /// <summary>
    /// Binds <paramref name="endPoint"/> and starts accepting connections on it, alongside any
    /// endpoints bound before.
    /// </summary>
    /// <param name="endPoint">
    /// An <see cref="IPEndPoint"/> (port 0 picks a free port; <see cref="IPAddress.IPv6Any"/> with
    /// the system's dual-mode default), a <see cref="UnixDomainSocketEndPoint"/> (its socket file is
    /// created, and removed at shutdown), or a <see cref="DnsEndPoint"/> (its first address).
    /// </param>
    /// <param name="tls">When given, every connection on this endpoint is authenticated as a TLS server first, within the handshake timeout.</param>
    /// <param name="cancellationToken">Cancels name resolution.</param>
    /// <returns>The bound address.</returns>
    /// <exception cref="SocketException">The address is in use or unusable (see <see cref="SocketListener.BindAsync(EndPoint, int, CancellationToken)"/>).</exception>
    /// <exception cref="ObjectDisposedException">The server is shutting down or shut down.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async Task<EndPoint> ListenAsync(EndPoint endPoint, SslServerAuthenticationOptions? tls = null, CancellationToken cancellationToken = default)
    {
        SocketTransport.ThrowIfUnsupported(endPoint);
        ObjectDisposedException.ThrowIf(_stopAccepting.IsCancellationRequested, this);
        var listener = await SocketListener.BindAsync(endPoint, Options.ListenBacklog, cancellationToken).ConfigureAwait(false);
        lock (_listenGate)
        {
            if (_stopAccepting.IsCancellationRequested)
            {
                listener.Dispose();
                throw new ObjectDisposedException(ToString(), "The server is shutting down.");
            }

            var loop = new AcceptLoop<Socket>(
                token => AcceptAsync(listener, token),
                (socket, _) => Accepted(listener, socket, tls),
                _logger)
            {
                TransientError = (_, _) =>
                {
                    Interlocked.Increment(ref _acceptErrors);
                    _metrics.AcceptError();
                },
            };
            _listeners.Add((listener, RunAcceptLoopAsync(listener, loop)));
        }

        ServerLog.Listening(_logger, AddressParser.Format(listener.LocalEndPoint), tls is null ? string.Empty : " (TLS)");
        return listener.LocalEndPoint;
    }

    /// <summary>Parses <paramref name="address"/> as <see cref="AddressParser.Parse"/> does and listens there, as the other overload.</summary>
    /// <param name="address"><c>host:port</c>, <c>[v6]:port</c>, <c>unix:/path</c> or a path.</param>
    /// <param name="tls">When given, connections are authenticated as a TLS server first.</param>
    /// <param name="cancellationToken">Cancels name resolution.</param>
    /// <returns>The bound address.</returns>
    /// <exception cref="ArgumentException"><paramref name="address"/> cannot be parsed.</exception>
    /// <exception cref="SocketException">The address is in use or unusable.</exception>
    /// <exception cref="ObjectDisposedException">The server is shutting down or shut down.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public Task<EndPoint> ListenAsync(string address, SslServerAuthenticationOptions? tls = null, CancellationToken cancellationToken = default)
        => ListenAsync(AddressParser.Parse(address), tls, cancellationToken);

    private async ValueTask<Socket> AcceptAsync(SocketListener listener, CancellationToken cancellationToken)
    {
        if (_rateLimiter is not null)
        {
            await _rateLimiter.TakeAsync(cancellationToken).ConfigureAwait(false);
        }

        return await AcceptSocket(listener, cancellationToken).ConfigureAwait(false);
    }

    private async Task RunAcceptLoopAsync(SocketListener listener, AcceptLoop<Socket> loop)
    {
        // Off the caller's flow: ListenAsync returns once bound.
        await Task.Yield();
        try
        {
            await loop.RunAsync(_stopAccepting.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            ServerLog.AcceptLoopFailed(_logger, AddressParser.Format(listener.LocalEndPoint), PipeProtocolLog.Summarize(ex), ex);
        }
        finally
        {
            listener.Dispose();
        }
    }

    /// <summary>Takes an accepted socket: refuses it at the limit, or starts serving it; never waits for the session.</summary>
    private ValueTask<bool> Accepted(SocketListener listener, Socket socket, SslServerAuthenticationOptions? tls)
    {
        var id = Interlocked.Increment(ref _nextId);
        var info = new ServerConnectionInfo(id, listener.LocalEndPoint, SafeEndPoint(socket, local: true), SafeEndPoint(socket, local: false), tls is not null);
        if (Interlocked.Increment(ref _occupied) > Options.MaximumSessions)
        {
            Interlocked.Decrement(ref _occupied);
            Refuse(info, socket);
            return ValueTask.FromResult(true);
        }

        var session = new ServerSession<TMessage>(info, _metrics, _endSession);
        Interlocked.Increment(ref _unfinished);
        _sessions[id] = session;
        _ = ServeAsync(session, socket, tls);
        return ValueTask.FromResult(true);
    }

    private void Refuse(ServerConnectionInfo info, Socket socket)
    {
        socket.Dispose();
        _metrics.Rejected();
        ServerLog.Refused(_logger, info.RemoteEndPoint?.ToString(), Options.MaximumSessions);
        Finish(info, SessionEndReason.Refused, error: null, ran: false, TimeSpan.Zero);
    }

    private static EndPoint? SafeEndPoint(Socket socket, bool local)
    {
        try
        {
            return local ? socket.LocalEndPoint : socket.RemoteEndPoint;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The peer is already gone; the session will find out.
            return null;
        }
    }
}
