using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A listening socket (TCP or Unix-domain) that accepts <see cref="TransportConnection"/>s,
/// optionally authenticating each as a TLS server.
/// </summary>
/// <remarks>
/// A Unix-domain listener's socket file is removed when the listener is disposed. A file already
/// at the path (say, left by a crashed process) makes binding fail with "address in use": it is
/// never deleted on the caller's behalf.
/// </remarks>
public sealed class SocketListener : IDisposable
{
    private readonly Socket _socket;
    private int _disposed;

    private SocketListener(Socket socket)
    {
        _socket = socket;
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
    /// <exception cref="SocketException">The address is in use, not local, or otherwise unusable.</exception>
    public static async ValueTask<SocketListener> BindAsync(EndPoint endPoint, int backlog = 1, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        if (endPoint is DnsEndPoint dns)
        {
            var addresses = await Dns.GetHostAddressesAsync(dns.Host, cancellationToken).ConfigureAwait(false);
            endPoint = new IPEndPoint(addresses[0], dns.Port);
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
        var socket = await _socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
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

    /// <summary>Stops listening; queued, not-yet-accepted connections are closed by the system.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _socket.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"{nameof(SocketListener)} {LocalEndPoint}";
}
