using System.Net;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>The session limit refuses the connection beyond it at once and counts it; the accept-rate limit holds accepts back without refusing.</summary>
public class ServerLimitSpecs
{
    [Test]
    public async Task The_connection_beyond_the_maximum_is_closed_at_once_and_counted_as_refused_while_the_others_are_served()
    {
        await using var server = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { MaximumSessions = 3 });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        var clients = new List<System.Net.Sockets.Socket>();
        for (var i = 0; i < 3; i++)
        {
            clients.Add(await ConnectAsync(endPoint));
            Assert.That(await EchoAsync(clients[i], "n" + i), Is.EqualTo("n" + i));
        }

        using var fourth = await ConnectAsync(endPoint);

        Assert.That(await ClosedByPeerAsync(fourth), Is.True, "the fourth is closed without being served");
        await ended.WaitForAsync(1);
        Assert.That(server.RefusedConnections, Is.EqualTo(1));
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.Refused }));
        Assert.That(await EchoAsync(clients[0], "still"), Is.EqualTo("still"), "the sessions within the limit are untouched");

        clients[1].Dispose();
        await ended.WaitForAsync(2);
        using var again = await ConnectAsync(endPoint);
        Assert.That(await EchoAsync(again, "room again"), Is.EqualTo("room again"), "a session that ended makes room");
        Assert.That(server.ActiveSessions, Is.EqualTo(3));
        foreach (var client in clients)
        {
            client.Dispose();
        }
    }

    [Test]
    public async Task Accepts_beyond_the_rate_limit_wait_in_the_backlog_and_are_served_in_turn_not_refused()
    {
        await using var server = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { MaximumAcceptsPerSecond = 20 });
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        var clients = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => ConnectAsync(endPoint)));

        var echoes = await Task.WhenAll(clients.Select((client, i) => EchoAsync(client, "r" + i))).Bounded();

        Assert.That(echoes, Is.EqualTo(Enumerable.Range(0, 30).Select(i => "r" + i)));
        Assert.That(server.RefusedConnections, Is.Zero);
        foreach (var client in clients)
        {
            client.Dispose();
        }
    }
}
