using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>A server listens on several endpoints at once (TCP v4 and v6, Unix, TLS over either) and serves each connection with its own session.</summary>
public class ServerListenSpecs
{
    private readonly SocketFiles _files = new();

    [TearDown]
    public void DeleteSocketFiles() => _files.DeleteAll();

    [Test]
    public async Task One_server_serves_TCP_v4_v6_and_Unix_endpoints_at_once_each_connection_with_its_own_session()
    {
        var infos = new List<ServerConnectionInfo>();
        await using var server = new PipeProtocolServer<string>(info =>
        {
            lock (infos)
            {
                infos.Add(info);
            }

            return Echo(info);
        });
        var v4 = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        var v6 = await server.ListenAsync(new IPEndPoint(IPAddress.IPv6Loopback, 0)).Bounded();
        var unixPath = _files.NewPath();
        var unix = await server.ListenAsync("unix:" + unixPath).Bounded();

        Assert.That(server.EndPoints, Is.EqualTo(new[] { v4, v6, unix }));
        foreach (var endPoint in new[] { v4, v6, unix })
        {
            using var client = await ConnectAsync(endPoint);
            Assert.That(await EchoAsync(client, "hello " + endPoint), Is.EqualTo("hello " + endPoint));
        }

        Assert.That(infos.Select(info => info.Transport), Is.EqualTo(new[] { ServerTransportKind.Tcp, ServerTransportKind.Tcp, ServerTransportKind.Unix }));
        Assert.That(infos.Select(info => info.Id), Is.EqualTo(new long[] { 1, 2, 3 }));
        Assert.That(infos[1].RemoteEndPoint, Is.InstanceOf<IPEndPoint>().With.Property(nameof(IPEndPoint.AddressFamily)).EqualTo(AddressFamily.InterNetworkV6));
        Assert.That(infos.All(info => !info.IsTls));

        await server.ShutdownAsync().Bounded();
        Assert.That(File.Exists(unixPath), Is.False, "the Unix socket file is removed at shutdown");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_TLS_endpoint_authenticates_each_connection_before_its_session_runs(bool unix)
    {
        ServerConnectionInfo? seen = null;
        await using var server = new PipeProtocolServer<string>(info =>
        {
            seen = info;
            return Echo(info);
        });
        var endPoint = await server.ListenAsync(unix ? _files.NewEndPoint() : new IPEndPoint(IPAddress.Loopback, 0), TestCertificates.ServerOptions()).Bounded();

        using var socket = await ConnectAsync(endPoint);
        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await tls.AuthenticateAsClientAsync(TestCertificates.ClientOptions()).Bounded();
        await tls.WriteAsync(Encoding.UTF8.GetBytes("secret\n"));
        var buffer = new byte[64];
        var read = await tls.ReadAsync(buffer).AsTask().Bounded();

        Assert.That(Encoding.UTF8.GetString(buffer, 0, read), Is.EqualTo("secret\n"));
        Assert.That(seen!.IsTls, Is.True);
    }

    [Test]
    public async Task Listening_after_shutdown_is_refused_with_ObjectDisposedException()
    {
        var server = new PipeProtocolServer<string>(Echo);
        await server.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)));
    }

    [Test]
    public void Options_out_of_range_are_refused_when_the_server_is_created()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { MaximumSessions = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { MaximumAcceptsPerSecond = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { HandshakeTimeout = TimeSpan.FromSeconds(-2) }));
    }

    [Test]
    public async Task An_address_in_use_is_refused_with_SocketException_and_the_server_keeps_its_other_endpoints()
    {
        await using var server = new PipeProtocolServer<string>(Echo);
        var first = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        Assert.That(async () => await server.ListenAsync(first), Throws.InstanceOf<SocketException>());
        using var client = await ConnectAsync(first);
        Assert.That(await EchoAsync(client, "still"), Is.EqualTo("still"));
        Assert.That(server.EndPoints, Is.EqualTo(new[] { first }));
    }

    [Test]
    public async Task An_endpoint_type_it_cannot_listen_on_is_refused_with_ArgumentException()
    {
        await using var server = new PipeProtocolServer<string>(Echo);

        Assert.That(async () => await server.ListenAsync(new UnsupportedEndPoint()), Throws.ArgumentException);
    }

    private sealed class UnsupportedEndPoint : EndPoint;
}
