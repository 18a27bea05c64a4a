using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>
/// One session's failure ends that session only, with the end reason its error names: a handler
/// that throws, a frame the framer rejects, a peer that closes or resets, a factory that throws.
/// </summary>
public class ServerIsolationSpecs
{
    [Test]
    public async Task A_session_whose_handler_throws_ends_with_that_error_and_its_neighbours_keep_echoing()
    {
        await using var server = new PipeProtocolServer<string>(info =>
        {
            var session = new LineProtocol(name: "s" + info.Id);
            session.OnLine = (line, token) => line == "boom" ? throw new InvalidOperationException("handler failed") : session.SendLineAsync(line, token);
            return session;
        });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        var clients = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ConnectAsync(endPoint)));
        Assert.That(await Task.WhenAll(clients.Select(client => EchoAsync(client, "before"))), Is.All.EqualTo("before"));

        await SendLinesAsync(clients[1], "boom");

        Assert.That(await ClosedByPeerAsync(clients[1]), Is.True);
        await ended.WaitForAsync(1);
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.Error }));
        Assert.That(ended.Ended[0].Error, Is.InstanceOf<InvalidOperationException>().With.Message.EqualTo("handler failed"));
        var neighbours = clients.Where((_, i) => i != 1).ToArray();
        Assert.That(await Task.WhenAll(neighbours.Select(client => EchoAsync(client, "after"))), Is.All.EqualTo("after"));
        Assert.That(server.ActiveSessions, Is.EqualTo(3));
        foreach (var client in clients)
        {
            client.Dispose();
        }
    }

    [Test]
    public async Task A_factory_that_throws_costs_only_that_connection()
    {
        var calls = 0;
        await using var server = new PipeProtocolServer<string>(info => Interlocked.Increment(ref calls) == 1 ? throw new InvalidOperationException("no session for you") : Echo(info));
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        using var first = await ConnectAsync(endPoint);
        Assert.That(await ClosedByPeerAsync(first), Is.True);
        using var second = await ConnectAsync(endPoint);

        Assert.That(await EchoAsync(second, "fine"), Is.EqualTo("fine"));
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.HandshakeFailed }));
    }

    [Test]
    public async Task Each_way_a_peer_ends_its_session_is_told_apart_peer_closed_reset_and_frame_error()
    {
        await using var server = new PipeProtocolServer<string>(info =>
        {
            var session = new LineProtocol(name: "s" + info.Id, framer: new Utf8LineFramer(maximumLineLength: 16));
            session.OnLine = (line, token) => session.SendLineAsync(line, token);
            return session;
        });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        using (var closer = await ConnectAsync(endPoint))
        {
            Assert.That(await EchoAsync(closer, "bye"), Is.EqualTo("bye"));
            closer.Shutdown(SocketShutdown.Send);
            Assert.That(await ClosedByPeerAsync(closer), Is.True);
        }

        await ended.WaitForAsync(1);
        using (var resetter = await ConnectAsync(endPoint))
        {
            Assert.That(await EchoAsync(resetter, "rst"), Is.EqualTo("rst"));
            resetter.LingerState = new LingerOption(true, 0);
        }

        await ended.WaitForAsync(2);
        using (var garbler = await ConnectAsync(endPoint))
        {
            await SendLinesAsync(garbler, new string('x', 100));
            Assert.That(await ClosedByPeerAsync(garbler), Is.True);
        }

        await ended.WaitForAsync(3);
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.PeerClosed, SessionEndReason.Reset, SessionEndReason.FrameError }));
        Assert.That(ended.Ended[2].Error, Is.InstanceOf<FrameTooLargeException>());
        Assert.That(server.EndedSessions(SessionEndReason.PeerClosed), Is.EqualTo(1));
    }

    [Test]
    public async Task A_SessionEnded_handler_that_throws_is_logged_and_the_server_serves_on()
    {
        await using var server = new PipeProtocolServer<string>(Echo);
        server.SessionEnded += (_, _) => throw new InvalidOperationException("listener bug");
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        using (var first = await ConnectAsync(endPoint))
        {
            Assert.That(await EchoAsync(first, "one"), Is.EqualTo("one"));
        }

        await ended.WaitForAsync(1);
        using var second = await ConnectAsync(endPoint);
        Assert.That(await EchoAsync(second, "two"), Is.EqualTo("two"));
        Assert.That(ended.Ended[0].Connection.ToString(), Does.StartWith("#1 Tcp"));
        Assert.That(ended.Ended[0].ToString(), Does.Contain("PeerClosed"));
    }
}
