using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// Two sessions talking to each other over every transport: request/response, bulk streams in
/// both directions at once, and many connect/disconnect cycles on the same objects.
/// </summary>
public class EndToEndTests
{
    private const int BulkLines = 50_000;

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Tcp6)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task Ping_pong_exchanges_lines_in_both_directions(TransportKind transport)
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

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Tcp6)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task Fifty_thousand_lines_stream_in_both_directions_at_once_and_arrive_in_order(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAsync(server, client, transport);

        var clientSends = Task.Run(() => SendBulkAsync(client, "c2s"));
        var serverSends = Task.Run(() => SendBulkAsync(server, "s2c"));
        var serverReceives = Task.Run(() => server.NextLinesAsync(BulkLines));
        var clientReceives = Task.Run(() => client.NextLinesAsync(BulkLines));

        await Task.WhenAll(clientSends, serverSends).Bounded();
        var atServer = await serverReceives.Bounded();
        var atClient = await clientReceives.Bounded();

        Assert.That(atServer, Is.EqualTo(Enumerable.Range(0, BulkLines).Select(i => BulkLine("c2s", i))));
        Assert.That(atClient, Is.EqualTo(Enumerable.Range(0, BulkLines).Select(i => BulkLine("s2c", i))));
        await client.DisconnectAsync().Bounded();
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task Two_hundred_connect_disconnect_cycles_on_one_client_object_each_exchange_a_line(TransportKind transport)
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

    private Task ConnectAsync(LineProtocol server, LineProtocol client, TransportKind transport)
        => SessionConnector.ConnectAsync(server, client, transport, _socketFiles);
}
