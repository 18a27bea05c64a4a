using System.Net;
using System.Net.Security;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>Brings two sessions up against each other over a real socket: one listens and accepts, the other connects.</summary>
internal static class SessionConnector
{
    /// <summary>
    /// <paramref name="server"/> listens on <paramref name="endPoint"/> and accepts; <paramref name="client"/>
    /// connects to the endpoint actually bound. Returns once both are Running, with that endpoint.
    /// </summary>
    public static async Task<EndPoint> ListenAndConnectAsync<TMessage>(
        PipeProtocol<TMessage> server,
        PipeProtocol<TMessage> client,
        EndPoint endPoint,
        SslServerAuthenticationOptions? serverTls = null,
        SslClientAuthenticationOptions? clientTls = null)
    {
        var bound = await server.StartServerAsync(endPoint, serverTls).Bounded();
        var accept = server.AcceptAsync();
        await client.ConnectAsync(bound, clientTls).Bounded();
        await accept.Bounded();
        return bound;
    }

    /// <summary>
    /// Connects <paramref name="client"/> to <paramref name="server"/> over <paramref name="kind"/> (TLS with the
    /// test certificate where the kind says so); a Unix socket path is taken from <paramref name="socketFiles"/>.
    /// Ignores the test when the kind is not available on this machine.
    /// </summary>
    public static async Task ConnectAsync<TMessage>(PipeProtocol<TMessage> server, PipeProtocol<TMessage> client, TransportKind kind, SocketFiles socketFiles)
    {
        kind.IgnoreIfUnavailable();
        var bound = await ListenAndConnectAsync(server, client, kind.BindEndPoint(socketFiles), kind.ServerTls(), kind.ClientTls());
        if (kind == TransportKind.Tcp6)
        {
            Assert.That(((IPEndPoint)bound).Address, Is.EqualTo(IPAddress.IPv6Loopback));
        }
    }

    /// <summary>
    /// Connects <paramref name="client"/> as soon as something listens on <paramref name="endPoint"/>, for a
    /// server started by <c>StartServerAndAcceptAsync</c>, which gives no signal between binding and accepting.
    /// </summary>
    public static async Task ConnectWhenListeningAsync<TMessage>(PipeProtocol<TMessage> client, EndPoint endPoint)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        while (true)
        {
            try
            {
                await client.ConnectAsync(endPoint).Bounded();
                return;
            }
            catch (ConnectException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }
        }
    }
}
