using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// The socket transports a test can connect over: raw connections (<see cref="TransportPair"/>) and
/// sessions (<see cref="SessionConnector"/>) alike.
/// </summary>
public enum TransportKind
{
    /// <summary>Plain TCP over 127.0.0.1.</summary>
    Tcp4,

    /// <summary>Plain TCP over [::1].</summary>
    Tcp6,

    /// <summary>Plain Unix-domain socket.</summary>
    Unix,

    /// <summary>TLS over TCP 127.0.0.1.</summary>
    TlsTcp,

    /// <summary>TLS over a Unix-domain socket.</summary>
    TlsUnix,
}

/// <summary>What a <see cref="TransportKind"/> binds to and how it is secured.</summary>
internal static class TransportKinds
{
    public static bool IsTls(this TransportKind kind) => kind is TransportKind.TlsTcp or TransportKind.TlsUnix;

    public static bool IsUnix(this TransportKind kind) => kind is TransportKind.Unix or TransportKind.TlsUnix;

    /// <summary>
    /// The endpoint to bind a listener of <paramref name="kind"/> to: port 0, or a fresh socket path
    /// (recorded in <paramref name="socketFiles"/>, when given, for deletion after the test).
    /// </summary>
    public static EndPoint BindEndPoint(this TransportKind kind, SocketFiles? socketFiles = null) => kind switch
    {
        TransportKind.Tcp4 or TransportKind.TlsTcp => new IPEndPoint(IPAddress.Loopback, 0),
        TransportKind.Tcp6 => new IPEndPoint(IPAddress.IPv6Loopback, 0),
        TransportKind.Unix or TransportKind.TlsUnix => socketFiles?.NewEndPoint() ?? new UnixDomainSocketEndPoint(TempPaths.NewSocketPath()),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>The test certificate's server options for a TLS kind, none otherwise.</summary>
    public static SslServerAuthenticationOptions? ServerTls(this TransportKind kind) => kind.IsTls() ? TestCertificates.ServerOptions() : null;

    /// <summary>Client options trusting the test certificate for a TLS kind, none otherwise.</summary>
    public static SslClientAuthenticationOptions? ClientTls(this TransportKind kind) => kind.IsTls() ? TestCertificates.ClientOptions() : null;

    /// <summary>Ignores the current test when <paramref name="kind"/> needs IPv6 loopback and the machine has none.</summary>
    public static void IgnoreIfUnavailable(this TransportKind kind)
    {
        if (kind != TransportKind.Tcp6)
        {
            return;
        }

        try
        {
            using var probe = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        }
        catch (SocketException ex)
        {
            Assert.Ignore($"IPv6 loopback is unavailable on this machine: {ex.SocketErrorCode}.");
        }
    }
}
