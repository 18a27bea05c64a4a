using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// Two sessions talking to each other over every transport: request/response, bulk streams in
/// both directions at once, and many connect/disconnect cycles on the same objects.
/// </summary>
public class EndToEndTests
{
    public enum Transport
    {
        TcpIPv4,
        TcpIPv6,
        Unix,
        TlsOverTcp,
        TlsOverUnix,
    }

    private const int BulkLines = 50_000;

    private readonly List<string> _socketPaths = [];

    [TearDown]
    public void DeleteSocketFiles()
    {
        foreach (var path in _socketPaths)
        {
            File.Delete(path);
        }

        _socketPaths.Clear();
    }

    [TestCase(Transport.TcpIPv4)]
    [TestCase(Transport.TcpIPv6)]
    [TestCase(Transport.Unix)]
    [TestCase(Transport.TlsOverTcp)]
    [TestCase(Transport.TlsOverUnix)]
    public async Task Ping_pong_exchanges_lines_in_both_directions(Transport transport)
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAsync(server, client, transport);

        for (var i = 0; i < 100; i++)
        {
            await client.SendLineAsync($"ping {i}").Bounded();
            Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo($"ping {i}"));
            await server.SendLineAsync($"pong {i} ünïcødé").Bounded();
            Assert.That(await client.NextLineAsync().Bounded(), Is.EqualTo($"pong {i} ünïcødé"));
        }

        await client.DisconnectAsync().Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [TestCase(Transport.TcpIPv4)]
    [TestCase(Transport.TcpIPv6)]
    [TestCase(Transport.Unix)]
    [TestCase(Transport.TlsOverTcp)]
    [TestCase(Transport.TlsOverUnix)]
    public async Task Fifty_thousand_lines_stream_in_both_directions_at_once_and_arrive_in_order(Transport transport)
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAsync(server, client, transport);

        var clientSends = Task.Run(() => SendBulkAsync(client, "c2s"));
        var serverSends = Task.Run(() => SendBulkAsync(server, "s2c"));
        var serverReceives = Task.Run(() => ReceiveAsync(server, BulkLines));
        var clientReceives = Task.Run(() => ReceiveAsync(client, BulkLines));

        await Task.WhenAll(clientSends, serverSends).Bounded();
        var atServer = await serverReceives.Bounded();
        var atClient = await clientReceives.Bounded();

        Assert.That(atServer, Is.EqualTo(Enumerable.Range(0, BulkLines).Select(i => BulkLine("c2s", i))));
        Assert.That(atClient, Is.EqualTo(Enumerable.Range(0, BulkLines).Select(i => BulkLine("s2c", i))));
        await client.DisconnectAsync().Bounded();
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
    }

    [TestCase(Transport.TcpIPv4)]
    [TestCase(Transport.Unix)]
    public async Task Two_hundred_connect_disconnect_cycles_on_one_client_object_each_exchange_a_line(Transport transport)
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var started = System.Diagnostics.Stopwatch.StartNew();

        for (var cycle = 0; cycle < 200; cycle++)
        {
            await ConnectAsync(server, client, transport);
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running), $"cycle {cycle}");

            await client.SendLineAsync($"ping {cycle}").Bounded();
            Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo($"ping {cycle}"));
            await server.SendLineAsync($"pong {cycle}").Bounded();
            Assert.That(await client.NextLineAsync().Bounded(), Is.EqualTo($"pong {cycle}"));

            await client.DisconnectAsync().Bounded();
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), $"cycle {cycle}");
            await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded(), $"cycle {cycle}");
        }

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(started.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "a cycle costs milliseconds, not a linger timeout");
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    private static string BulkLine(string direction, int i) => $"{direction} {i:D6} the quick brown fox jumps over the lazy dog";

    private static async Task SendBulkAsync(LineProtocol protocol, string direction)
    {
        for (var i = 0; i < BulkLines; i++)
        {
            await protocol.SendLineAsync(BulkLine(direction, i));
        }
    }

    private static async Task<List<string>> ReceiveAsync(LineProtocol protocol, int count)
    {
        using var cts = new CancellationTokenSource(TestTimeouts.Default);
        var lines = new List<string>(count);
        while (lines.Count < count)
        {
            lines.Add(await protocol.Received.ReadAsync(cts.Token));
        }

        return lines;
    }

    private async Task ConnectAsync(LineProtocol server, LineProtocol client, Transport transport)
    {
        EndPoint endPoint;
        switch (transport)
        {
            case Transport.Unix or Transport.TlsOverUnix:
                var path = TempPaths.NewSocketPath();
                _socketPaths.Add(path);
                endPoint = new UnixDomainSocketEndPoint(path);
                break;
            case Transport.TcpIPv6:
                if (!Socket.OSSupportsIPv6 || !CanBindIPv6Loopback())
                {
                    Assert.Ignore("IPv6 loopback ([::1]) is not available on this machine.");
                }

                endPoint = new IPEndPoint(IPAddress.IPv6Loopback, 0);
                break;
            default:
                endPoint = new IPEndPoint(IPAddress.Loopback, 0);
                break;
        }

        var tls = transport is Transport.TlsOverTcp or Transport.TlsOverUnix;
        SslServerAuthenticationOptions? serverTls = tls ? TestCertificates.ServerOptions() : null;
        SslClientAuthenticationOptions? clientTls = tls ? TestCertificates.ClientOptions() : null;
        var bound = await server.StartServerAsync(endPoint, serverTls).Bounded();
        if (transport == Transport.TcpIPv6)
        {
            Assert.That(((IPEndPoint)bound).Address, Is.EqualTo(IPAddress.IPv6Loopback));
        }

        var accept = server.AcceptAsync();
        await client.ConnectAsync(bound, clientTls).Bounded();
        await accept.Bounded();
    }

    private static bool CanBindIPv6Loopback()
    {
        try
        {
            using var probe = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
