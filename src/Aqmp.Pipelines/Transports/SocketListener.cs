using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A listening socket (TCP or Unix-domain) that accepts <see cref="TransportConnection"/>s,
/// optionally authenticating each as a TLS server.
/// </summary>
/// <remarks>
/// <para>
/// A Unix-domain listener on a filesystem path creates the socket file when it binds and removes it
/// when it is disposed. Anything already at the path (say, a socket file left by a crashed process,
/// or a regular file) makes binding fail; it is never deleted on the caller's behalf.
/// </para>
/// <para>
/// On Linux the listener records the file's device and inode when it binds, and at disposal removes
/// the path only while it still names that socket file: if the file was removed and another server
/// bound the same path meanwhile, disposing this listener leaves the other server's file alone.
/// Elsewhere the runtime's bind is used, and disposal removes whatever is at the path by then, so a
/// listener disposed after its file was replaced removes its successor's file; on those systems,
/// remove and rebind a path only once its previous listener has been disposed.
/// </para>
/// <para>Abstract Unix-domain names (starting with <c>'\0'</c> or <c>'@'</c>) have no file.</para>
/// </remarks>
public sealed class SocketListener : IDisposable
{
    private readonly Socket _socket;
    private readonly UnixSocketFile? _file;
    private readonly Lock _disposeGate = new();
    private bool _disposed;

    private SocketListener(Socket socket, UnixSocketFile? file = null)
    {
        _socket = socket;
        _file = file;
        LocalEndPoint = socket.LocalEndPoint ?? throw new InvalidOperationException("The listening socket has no local endpoint.");
    }

    /// <summary>The bound address; for TCP port 0, the port the system chose.</summary>
    public EndPoint LocalEndPoint { get; }

    /// <summary>
    /// Binds to <paramref name="endPoint"/> and starts listening.
    /// </summary>
    /// <param name="endPoint">
    /// A <see cref="UnixDomainSocketEndPoint"/>, an <see cref="IPEndPoint"/> (port 0 picks a free port)
    /// or a <see cref="DnsEndPoint"/> (its first address is used).
    /// </param>
    /// <param name="backlog">How many not-yet-accepted connections the system queues.</param>
    /// <param name="cancellationToken">Cancels name resolution.</param>
    /// <returns>The listener.</returns>
    /// <exception cref="SocketException">
    /// The address is in use, not local, or otherwise unusable. For a Unix-domain path on Linux, anything
    /// already at the path gives <see cref="SocketError.AddressAlreadyInUse"/> with a message naming the
    /// path and saying either that it is not a socket or that the address is in use; the existing file
    /// is left as it was.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired during name resolution.</exception>
    public static ValueTask<SocketListener> BindAsync(EndPoint endPoint, int backlog = 1, CancellationToken cancellationToken = default)
        => BindAsync(endPoint, backlog, replaceStaleSocket: false, cancellationToken);

    /// <summary>
    /// Binds to <paramref name="endPoint"/> and starts listening, as
    /// <see cref="BindAsync(EndPoint, int, CancellationToken)"/> does; with
    /// <paramref name="replaceStaleSocket"/>, a socket file at a Unix-domain path (on Linux) that no
    /// server answers on (a connection to it is refused: what a server that did not stop cleanly
    /// leaves behind) is removed and the path bound again.
    /// </summary>
    /// <param name="endPoint">Where to listen, as for the other overload.</param>
    /// <param name="backlog">How many not-yet-accepted connections the system queues.</param>
    /// <param name="replaceStaleSocket">Whether a stale Unix socket file is replaced.</param>
    /// <param name="cancellationToken">Cancels name resolution.</param>
    /// <returns>The listener.</returns>
    /// <exception cref="SocketException">
    /// As for the other overload; a socket file that a server answers on, and anything at the path
    /// that is not a socket, give <see cref="SocketError.AddressAlreadyInUse"/> naming the path, and
    /// are left as they were.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired during name resolution.</exception>
    public static async ValueTask<SocketListener> BindAsync(EndPoint endPoint, int backlog, bool replaceStaleSocket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        if (endPoint is DnsEndPoint dns)
        {
            var addresses = await Dns.GetHostAddressesAsync(dns.Host, cancellationToken).ConfigureAwait(false);
            endPoint = new IPEndPoint(addresses[0], dns.Port);
        }

        if (endPoint is UnixDomainSocketEndPoint unix && UnixSocketFile.Handles(unix))
        {
            var file = UnixSocketFile.Bind(unix, backlog, replaceStaleSocket);
            return new SocketListener(file.Socket, file);
        }

        var socket = SocketTransport.CreateSocket(endPoint);
        try
        {
            // No ReuseAddress here: .NET already sets SO_REUSEADDR for TCP binds on Unix, and the
            // option would let a second listener share (and steal connections from) a port in use.
            socket.Bind(endPoint);
            socket.Listen(backlog);
            return new SocketListener(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Accepts one connection and, when <paramref name="tls"/> is given, authenticates as a TLS server.
    /// </summary>
    /// <param name="tls">TLS server options, or <see langword="null"/> for a plain connection.</param>
    /// <param name="options">Buffering and close options; <see cref="TransportOptions.Default"/> when null.</param>
    /// <param name="cancellationToken">Cancels waiting for a peer and the handshake.</param>
    /// <returns>The accepted connection.</returns>
    /// <exception cref="SocketException">Accepting failed.</exception>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The TLS handshake failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    /// <exception cref="ObjectDisposedException">The listener was disposed.</exception>
    public async ValueTask<TransportConnection> AcceptAsync(SslServerAuthenticationOptions? tls = null, TransportOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= TransportOptions.Default;
        var socket = await AcceptSocketAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (tls is null)
            {
                return SocketTransport.Open(socket, options);
            }

            return await SocketTransport.AuthenticateAsync(
                socket,
                options,
                (stream, token) => stream.AuthenticateAsServerAsync(tls, token),
                cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Accepts one connection and returns its socket as the system gave it, for a caller that
    /// decides itself what to make of it (refuse it, authenticate it under its own deadline).
    /// </summary>
    /// <param name="cancellationToken">Cancels waiting for a peer.</param>
    /// <returns>The connected socket; the caller owns it.</returns>
    /// <exception cref="SocketException">Accepting failed (see <see cref="AcceptLoop.IsTransient"/> for the errors worth retrying).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    /// <exception cref="ObjectDisposedException">The listener was disposed.</exception>
    public ValueTask<Socket> AcceptSocketAsync(CancellationToken cancellationToken = default) => _socket.AcceptAsync(cancellationToken);

    /// <summary>
    /// Stops listening; queued, not-yet-accepted connections are closed by the system, and a pending
    /// <see cref="AcceptAsync"/> fails with <see cref="SocketError.OperationAborted"/>. A Unix-domain
    /// listener's socket file is removed (on Linux, only while it is still this listener's file).
    /// Calling it again does nothing, but waits until a call under way on another thread is done,
    /// so that when any call returns the socket is closed and its file removed.
    /// </summary>
    public void Dispose()
    {
        lock (_disposeGate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (_file is not null)
            {
                _file.Dispose();
            }
            else
            {
                _socket.Dispose();
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{nameof(SocketListener)} {LocalEndPoint}";
}
