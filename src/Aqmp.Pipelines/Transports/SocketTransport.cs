using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Pipelines.Sockets.Unofficial;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// Opens <see cref="TransportConnection"/>s over sockets (TCP over IPv4 or IPv6, Unix-domain),
/// optionally secured with TLS, over streams, and over existing pipes.
/// </summary>
public static class SocketTransport
{
    /// <summary>
    /// Connects a socket to <paramref name="endPoint"/> and, when <paramref name="tls"/> is given,
    /// authenticates as a TLS client.
    /// </summary>
    /// <param name="endPoint">
    /// A <see cref="UnixDomainSocketEndPoint"/>, an <see cref="IPEndPoint"/> or a <see cref="DnsEndPoint"/>
    /// (every address of the name is tried).
    /// </param>
    /// <param name="tls">
    /// TLS client options, or <see langword="null"/> for a plain connection. When
    /// <see cref="SslClientAuthenticationOptions.TargetHost"/> is empty, the host of
    /// <paramref name="endPoint"/> is used (the options object is not modified).
    /// </param>
    /// <param name="options">Buffering and close options; <see cref="TransportOptions.Default"/> when null.</param>
    /// <param name="cancellationToken">Cancels the connection attempt.</param>
    /// <returns>The connection.</returns>
    /// <exception cref="SocketException">The connection was refused, the host is unknown, the Unix path is missing…</exception>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The TLS handshake failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired; nothing is left open.</exception>
    public static async ValueTask<TransportConnection> ConnectAsync(EndPoint endPoint, SslClientAuthenticationOptions? tls = null, TransportOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        options ??= TransportOptions.Default;
        ThrowIfDescriptorPassing(options, endPoint is UnixDomainSocketEndPoint && tls is null, tls is null ? "a TCP connection" : "a TLS connection");
        var socket = CreateSocket(endPoint);
        try
        {
            await ConnectSocketAsync(socket, endPoint, cancellationToken).ConfigureAwait(false);
            if (tls is null)
            {
                return Open(socket, options);
            }

            var clientOptions = WithTargetHost(tls, endPoint);
            return await AuthenticateAsync(
                socket,
                options,
                (stream, token) => stream.AuthenticateAsClientAsync(clientOptions, token),
                cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Wraps an already connected socket; the connection takes ownership of it.
    /// </summary>
    /// <param name="socket">A connected stream socket.</param>
    /// <param name="options">Buffering and close options; <see cref="TransportOptions.Default"/> when null.</param>
    /// <returns>The connection.</returns>
    /// <exception cref="ArgumentException">The socket is not connected or not a stream socket.</exception>
    public static TransportConnection Open(Socket socket, TransportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (socket.SocketType != SocketType.Stream || !socket.Connected)
        {
            throw new ArgumentException("The socket must be a connected stream socket.", nameof(socket));
        }

        options ??= TransportOptions.Default;
        ThrowIfDescriptorPassing(options, socket.AddressFamily == AddressFamily.Unix, "a TCP socket");
        SocketConnection.SetRecommendedClientOptions(socket);
        return options.AllowDescriptorPassing ? UnixDescriptorConnection.Create(socket, options) : new SocketTransportConnection(socket, options);
    }

    /// <summary>
    /// Wraps an already open, readable and writable stream (e.g. an authenticated
    /// <see cref="SslStream"/>); the connection takes ownership of it.
    /// </summary>
    /// <param name="stream">The stream.</param>
    /// <param name="options">Buffering and close options; <see cref="TransportOptions.Default"/> when null.</param>
    /// <returns>The connection.</returns>
    /// <exception cref="ArgumentException">The stream cannot both read and write.</exception>
    public static TransportConnection Open(Stream stream, TransportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead || !stream.CanWrite)
        {
            throw new ArgumentException("The stream must be readable and writable.", nameof(stream));
        }

        options ??= TransportOptions.Default;
        ThrowIfDescriptorPassing(options, false, "a stream");
        return StreamTransportConnection.Create(stream, options);
    }

    /// <summary>
    /// Wraps an existing duplex pipe (in-memory pipes, another framework's connection). What is
    /// flushed to the connection's output is copied into the pipe's output by the connection's send
    /// loop, one flush per batch. Closing the connection completes the pipe's reader and writer.
    /// </summary>
    /// <param name="pipe">The pipe.</param>
    /// <param name="options">The send buffer's options (<see cref="TransportOptions.SendPipeOptions"/>); <see cref="TransportOptions.Default"/> when null.</param>
    /// <returns>The connection.</returns>
    public static TransportConnection Open(IDuplexPipe pipe, TransportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(pipe);
        options ??= TransportOptions.Default;
        ThrowIfDescriptorPassing(options, false, "a pipe");
        return new DuplexPipeConnection(pipe, options);
    }

    /// <summary>
    /// The connection itself when it is one of this library's (its output is a send buffer with a
    /// send loop of its own); otherwise a connection with a send buffer and send loop that writes
    /// into <paramref name="connection"/>'s output, and closes or aborts it after its pipe.
    /// </summary>
    internal static TransportConnection Adopt(TransportConnection connection, TransportOptions options)
    {
        ThrowIfDescriptorPassing(options, connection is UnixDescriptorConnection, "a connection opened without descriptor passing");
        return IsOwn(connection) ? connection : new DuplexPipeConnection(connection.Pipe, options, connection);
    }

    /// <summary>
    /// Whether <paramref name="connection"/> is one of this library's (its output is a send buffer
    /// with a send loop of its own), which <see cref="Adopt"/> returns as it is.
    /// </summary>
    internal static bool IsOwn(TransportConnection connection) => connection.Pipe.Output is SendBuffer;

    /// <summary>
    /// Throws when <paramref name="options"/> ask for descriptor passing and the connection is not
    /// a Unix-domain stream socket (<paramref name="canPass"/> false), naming what it is.
    /// </summary>
    /// <exception cref="NotSupportedException">Descriptors cannot be passed over <paramref name="what"/>.</exception>
    internal static void ThrowIfDescriptorPassing(TransportOptions options, bool canPass, string what)
        => ThrowIfDescriptorPassing(options.AllowDescriptorPassing, canPass, what);

    /// <summary>
    /// Throws when descriptor passing is asked for (<paramref name="allowDescriptorPassing"/>) and
    /// the connection is not a Unix-domain stream socket (<paramref name="canPass"/> false), naming what it is.
    /// </summary>
    /// <exception cref="NotSupportedException">Descriptors cannot be passed over <paramref name="what"/>.</exception>
    internal static void ThrowIfDescriptorPassing(bool allowDescriptorPassing, bool canPass, string what)
    {
        if (allowDescriptorPassing && !canPass)
        {
            throw new NotSupportedException($"File descriptors can be passed only over a plain Unix-domain socket, not over {what}: turn AllowDescriptorPassing off for this connection.");
        }
    }

    private static async ValueTask ConnectSocketAsync(Socket socket, EndPoint endPoint, CancellationToken cancellationToken)
    {
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex) when (endPoint is UnixDomainSocketEndPoint unix && ex.SocketErrorCode == SocketError.AddressNotAvailable)
        {
            // The system reports a missing socket file as "Cannot assign requested address".
            throw new SocketException((int)ex.SocketErrorCode, $"No Unix socket at '{unix}': there is no such file.");
        }
        catch (SocketException ex) when (endPoint is UnixDomainSocketEndPoint unix && ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            throw new SocketException((int)ex.SocketErrorCode, UnixSocketFile.IsSocket(unix.ToString()) is false
                ? $"No Unix socket at '{unix}': the file there is not a socket."
                : $"Nothing listens on the Unix socket '{unix}' (connection refused): its server has stopped or is not accepting.");
        }
    }

    /// <summary>Throws unless <paramref name="endPoint"/> is a kind of endpoint these sockets can use.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="endPoint"/> is null.</exception>
    /// <exception cref="ArgumentException">The endpoint type is not supported.</exception>
    internal static void ThrowIfUnsupported(EndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        if (endPoint is not (UnixDomainSocketEndPoint or IPEndPoint or DnsEndPoint))
        {
            throw new ArgumentException($"Unsupported endpoint type {endPoint.GetType().Name}: use a UnixDomainSocketEndPoint, IPEndPoint or DnsEndPoint.", nameof(endPoint));
        }
    }

    /// <summary>Creates an unconnected stream socket suited to <paramref name="endPoint"/>.</summary>
    internal static Socket CreateSocket(EndPoint endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint => new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified),
        IPEndPoint ip => new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true },
        DnsEndPoint => new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true },
        _ => throw new ArgumentException($"Unsupported endpoint type {endPoint.GetType().Name}.", nameof(endPoint)),
    };

    /// <summary>Runs a TLS handshake over a connected socket and wraps the authenticated stream.</summary>
    internal static async ValueTask<TransportConnection> AuthenticateAsync(
        Socket socket,
        TransportOptions options,
        Func<SslStream, CancellationToken, Task> authenticate,
        CancellationToken cancellationToken)
    {
        ThrowIfDescriptorPassing(options, false, "a TLS connection");
        var local = socket.LocalEndPoint;
        var remote = socket.RemoteEndPoint;
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        try
        {
            await authenticate(tls, cancellationToken).ConfigureAwait(false);
            return StreamTransportConnection.Create(tls, options, socket, local, remote);
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static SslClientAuthenticationOptions WithTargetHost(SslClientAuthenticationOptions tls, EndPoint endPoint)
    {
        if (!string.IsNullOrEmpty(tls.TargetHost))
        {
            return tls;
        }

        return new SslClientAuthenticationOptions
        {
            TargetHost = endPoint switch
            {
                DnsEndPoint dns => dns.Host,
                IPEndPoint ip => ip.Address.ToString(),
                _ => "localhost",
            },
            AllowRenegotiation = tls.AllowRenegotiation,
            AllowTlsResume = tls.AllowTlsResume,
            ApplicationProtocols = tls.ApplicationProtocols,
            CertificateChainPolicy = tls.CertificateChainPolicy,
            CertificateRevocationCheckMode = tls.CertificateRevocationCheckMode,
            CipherSuitesPolicy = tls.CipherSuitesPolicy,
            ClientCertificateContext = tls.ClientCertificateContext,
            ClientCertificates = tls.ClientCertificates,
            EnabledSslProtocols = tls.EnabledSslProtocols,
            EncryptionPolicy = tls.EncryptionPolicy,
            LocalCertificateSelectionCallback = tls.LocalCertificateSelectionCallback,
            RemoteCertificateValidationCallback = tls.RemoteCertificateValidationCallback,
        };
    }
}
