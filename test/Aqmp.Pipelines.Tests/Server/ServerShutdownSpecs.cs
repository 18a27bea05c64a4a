using System.Diagnostics;
using System.Net;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>
/// Graceful shutdown: accepting stops, handshakes under way are dropped, every running session is
/// asked to disconnect and drains, and those still draining at the deadline are aborted; the
/// result counts each way.
/// </summary>
public class ServerShutdownSpecs
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMilliseconds(1000);

    [Test]
    public async Task Shutdown_drains_idle_and_busy_sessions_drops_handshakes_aborts_a_session_that_cannot_drain_and_counts_each()
    {
        var sessions = new System.Collections.Concurrent.ConcurrentDictionary<string, LineProtocol>();
        await using var server = new PipeProtocolServer<string>(
            info =>
            {
                var session = new LineProtocol(name: "s" + info.Id);
                session.Handshake = async (_, handshake, token) =>
                {
                    var name = await handshake.ReceiveAsync(token);
                    sessions[name] = session;
                };
                session.OnLine = async (line, token) =>
                {
                    if (line == "slow")
                    {
                        await Task.Delay(200, CancellationToken.None);
                    }

                    if (line == "flood")
                    {
                        var block = new string('f', 4000);
                        for (var i = 0; i < 2000; i++)
                        {
                            await session.SendLineAsync(block, token);
                        }
                    }

                    await session.SendLineAsync(line, token);
                };
                return session;
            },
            new PipeProtocolServerOptions
            {
                ShutdownTimeout = Deadline,
                HandshakeTimeout = TimeSpan.FromSeconds(30),
                Transport = new PipeProtocolOptions { LingerTimeout = TimeSpan.FromMilliseconds(50) },   // these peers never close their side
            });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        using var idle = await ConnectAsync(endPoint);
        await SendLinesAsync(idle, "idle");
        using var busy = await ConnectAsync(endPoint);
        await SendLinesAsync(busy, "busy");
        using var stuck = await ConnectAsync(endPoint);
        await SendLinesAsync(stuck, "stuck");
        using var handshaking = await ConnectAsync(endPoint);
        await WaitUntilAsync(() => sessions.Count == 3 && server.ActiveSessions == 3 && server.ActiveHandshakes == 1, "three sessions run and one handshakes");
        Assert.That(await EchoAsync(idle, "hi"), Is.EqualTo("hi"));
        await SendLinesAsync(stuck, "flood");   // never read: the session's sends fill every buffer and wait
        await SendLinesAsync(busy, "slow");     // its handler is still running when the shutdown asks
        await WaitUntilAsync(() => sessions["stuck"].Runstate == Runstate.Running, "the stuck session runs");
        await Task.Delay(50);

        var clock = Stopwatch.StartNew();
        var result = await server.ShutdownAsync().Bounded();
        clock.Stop();

        Assert.That(result.Drained, Is.EqualTo(2), result + "; " + string.Join(" | ", ended.Ended));
        Assert.That(result.Aborted, Is.EqualTo(1), result.ToString());
        Assert.That(result.HandshakesCancelled, Is.EqualTo(1), result.ToString());
        Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(Deadline - TimeSpan.FromMilliseconds(50)), "the stuck session held the shutdown to its deadline");
        Assert.That(ended.Ended.Single(e => e.Reason == SessionEndReason.Aborted && e.Connection.Id == 3).Error, Is.InstanceOf<OperationCanceledException>());
        Assert.That(ended.Reasons.Order(), Is.EqualTo(new[] { SessionEndReason.Graceful, SessionEndReason.Graceful, SessionEndReason.Aborted, SessionEndReason.Aborted }));
        Assert.That(sessions.Values.Select(session => session.Runstate), Is.All.EqualTo(Runstate.Idle));
        Assert.That(await ClosedByPeerAsync(idle), Is.True);
        Assert.That(await ClosedByPeerAsync(handshaking), Is.True);
        Assert.That(await ClosedByPeerAsync(busy), Is.True, "the busy session ended once its handler returned");
        Assert.That(server.ActiveSessions + server.ActiveHandshakes, Is.Zero);
    }

    [Test]
    public async Task Shutdown_stops_accepting_and_is_idempotent()
    {
        var server = new PipeProtocolServer<string>(Echo);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var client = await ConnectAsync(endPoint);
        Assert.That(await EchoAsync(client, "x"), Is.EqualTo("x"));

        var first = server.ShutdownAsync();
        var second = server.ShutdownAsync();
        await server.DisposeAsync();

        Assert.That(second, Is.SameAs(first));
        Assert.That((await first.Bounded()).Drained, Is.EqualTo(1));
        Assert.That(async () => await ConnectAsync(endPoint), Throws.InstanceOf<System.Net.Sockets.SocketException>());
    }

    [Test]
    public async Task Cancelling_the_shutdown_aborts_the_remaining_drains_at_once()
    {
        var server = new PipeProtocolServer<string>(
            info =>
            {
                var session = new LineProtocol(name: "s" + info.Id);
                session.OnLine = async (_, token) =>
                {
                    var block = new string('f', 4000);
                    for (var i = 0; i < 2000; i++)
                    {
                        await session.SendLineAsync(block, token);
                    }
                };
                return session;
            },
            new PipeProtocolServerOptions { ShutdownTimeout = TimeSpan.FromMinutes(5) });
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var stuck = await ConnectAsync(endPoint);
        await SendLinesAsync(stuck, "flood");   // never read
        await WaitUntilAsync(() => server.ActiveSessions == 1, "the session runs");
        await Task.Delay(100);
        using var impatient = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        var result = await server.ShutdownAsync(impatient.Token).Bounded();

        Assert.That(result.Aborted, Is.EqualTo(1), result.ToString());
        Assert.That(server.EndedSessions(SessionEndReason.Aborted), Is.EqualTo(1));
    }

    [Test]
    public async Task Shutdown_drops_a_TLS_handshake_under_way()
    {
        var server = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { HandshakeTimeout = TimeSpan.FromMinutes(5) });
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0), TestCertificates.ServerOptions()).Bounded();
        using var silent = await ConnectAsync(endPoint);
        await WaitUntilAsync(() => server.ActiveHandshakes == 1, "the handshake is under way");

        var result = await server.ShutdownAsync().Bounded();

        Assert.That(result.HandshakesCancelled, Is.EqualTo(1), result.ToString());
        Assert.That(await ClosedByPeerAsync(silent), Is.True);
    }
}
