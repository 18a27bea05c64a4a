using System.Net;
using System.Text;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>
/// The handshake timeout drops a peer that has not completed the TLS handshake or the session's
/// handshake in time (the slowloris defence); the idle timeout disconnects a session that neither
/// received nor sent for its duration and leaves active ones alone.
/// </summary>
public class ServerTimeoutSpecs
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(300);

    [Test]
    public async Task A_peer_that_never_starts_the_TLS_handshake_is_dropped_at_the_handshake_timeout()
    {
        await using var server = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { HandshakeTimeout = Short });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0), TestCertificates.ServerOptions()).Bounded();

        using var silent = await ConnectAsync(endPoint);

        Assert.That(await ClosedByPeerAsync(silent), Is.True);
        await ended.WaitForAsync(1);
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.HandshakeTimeout }));
        Assert.That(ended.Ended[0].Duration, Is.GreaterThanOrEqualTo(Short - TimeSpan.FromMilliseconds(20)));
        Assert.That(server.ActiveHandshakes, Is.Zero);
    }

    [Test]
    public async Task A_peer_that_trickles_its_handshake_line_a_byte_at_a_time_is_dropped_at_the_handshake_timeout()
    {
        await using var server = new PipeProtocolServer<string>(
            info =>
            {
                var session = Echo(info);
                session.Handshake = async (_, handshake, token) =>
                {
                    if (await handshake.ReceiveAsync(token) != "hello")
                    {
                        throw new InvalidOperationException("not hello");
                    }
                };
                return session;
            },
            new PipeProtocolServerOptions { HandshakeTimeout = Short });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var prompt = await ConnectAsync(endPoint);
        using var slowloris = await ConnectAsync(endPoint);

        await SendLinesAsync(prompt, "hello", "ping");
        var trickle = Task.Run(async () =>
        {
            try
            {
                foreach (var b in Encoding.UTF8.GetBytes("hello-hello-hello-hello"))
                {
                    await slowloris.SendAsync(new[] { b });
                    await Task.Delay(50);
                }
            }
            catch (System.Net.Sockets.SocketException)
            {
                // Dropped mid-trickle, as it should be.
            }
        });

        Assert.That((await RawPeer.ReadLinesAsync(prompt, 1).Bounded()).Single(), Is.EqualTo("ping"));
        Assert.That(await ClosedByPeerAsync(slowloris), Is.True);
        await ended.WaitForAsync(1);
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.HandshakeTimeout }));
        Assert.That(await EchoAsync(prompt, "after"), Is.EqualTo("after"), "the prompt peer's session is untouched");
        await trickle.Bounded();
    }

    [Test]
    public async Task A_handshake_that_fails_ends_as_HandshakeFailed_with_its_error()
    {
        await using var server = new PipeProtocolServer<string>(info =>
        {
            var session = Echo(info);
            session.Handshake = async (_, handshake, token) => throw new InvalidOperationException("bad greeting: " + await handshake.ReceiveAsync(token));
            return session;
        });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var client = await ConnectAsync(endPoint);

        await SendLinesAsync(client, "nonsense");

        Assert.That(await ClosedByPeerAsync(client), Is.True);
        await ended.WaitForAsync(1);
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.HandshakeFailed }));
        Assert.That(ended.Ended[0].Error, Is.InstanceOf<Aqmp.Pipelines.Session.ConnectException>());
    }

    [Test]
    public async Task A_session_idle_for_the_idle_timeout_is_disconnected_while_an_active_one_is_kept()
    {
        await using var server = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { IdleTimeout = Short });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var idle = await ConnectAsync(endPoint);
        using var active = await ConnectAsync(endPoint);
        Assert.That(await EchoAsync(idle, "once"), Is.EqualTo("once"));

        var idleClosed = ClosedByPeerAsync(idle);
        for (var i = 0; i < 12; i++)
        {
            Assert.That(await EchoAsync(active, "tick" + i), Is.EqualTo("tick" + i));
            await Task.Delay(Short / 4);
        }

        Assert.That(await idleClosed, Is.True);
        await ended.WaitForAsync(1);
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.IdleTimeout }), "only the idle session ended");
        Assert.That(server.ActiveSessions, Is.EqualTo(1));
    }

    [Test]
    public async Task A_peer_that_starts_a_TLS_record_and_never_finishes_it_is_dropped_at_the_handshake_timeout()
    {
        await using var server = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { HandshakeTimeout = Short });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0), TestCertificates.ServerOptions()).Bounded();
        using var stalled = await ConnectAsync(endPoint);

        await stalled.SendAsync(new byte[] { 0x16, 0x03, 0x01, 0x01, 0x00, 0x01 });   // a handshake record of 256 bytes: 1 sent

        Assert.That(await ClosedByPeerAsync(stalled), Is.True);
        await ended.WaitForAsync(1);
        Assert.That(ended.Reasons, Is.EqualTo(new[] { SessionEndReason.HandshakeTimeout }));
    }

    [Test]
    public async Task Without_an_idle_timeout_a_quiet_session_is_kept()
    {
        await using var server = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { HandshakeTimeout = Timeout.InfiniteTimeSpan });
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var quiet = await ConnectAsync(endPoint);
        Assert.That(await EchoAsync(quiet, "one"), Is.EqualTo("one"));

        Assert.That(await ClosedByPeerAsync(quiet, Short * 2), Is.False);
        Assert.That(await EchoAsync(quiet, "two"), Is.EqualTo("two"));
        Assert.That(server.GetSessions(), Has.Count.EqualTo(1));
    }
}
