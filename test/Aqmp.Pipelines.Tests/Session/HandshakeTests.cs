using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// EstablishSessionAsync (the seed's <c>_establish_session</c>): during the handshake,
/// SendAsync writes directly and ReceiveAsync reads directly; whatever arrives after the handshake
/// goes to OnMessageAsync, none of it lost; a handshake failure is "Failed to establish session".
/// </summary>
public class HandshakeTests : SessionSpecBase
{
    [Test]
    public async Task A_greeting_and_reply_handshake_between_two_protocols_leads_both_to_Running()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        string? greetingSeen = null;
        string? replySeen = null;
        listening.Handshake = async (p, handshake, ct) =>
        {
            greetingSeen = await handshake.ReceiveAsync(ct);
            await handshake.SendAsync("welcome", ct);
        };
        client.Handshake = async (p, handshake, ct) =>
        {
            await handshake.SendAsync("hello", ct);
            replySeen = await handshake.ReceiveAsync(ct);
        };

        await SessionConnector.ListenAndConnectAsync(listening, client, SessionSpecKit.Loopback0);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(greetingSeen, Is.EqualTo("hello"));
            Assert.That(replySeen, Is.EqualTo("welcome"));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
            Assert.That(listening.Runstate, Is.EqualTo(Runstate.Running));
        }

        // The handshake lines were consumed by the handshake, not delivered to OnMessageAsync.
        await client.SendLineAsync("after").Bounded();
        Assert.That(await listening.NextLineAsync().Bounded(), Is.EqualTo("after"));
        Assert.That(listening.Received.TryRead(out _), Is.False);
        Assert.That(client.Received.TryRead(out _), Is.False);
    }

    [Test]
    public async Task A_handshake_with_a_raw_socket_peer_sends_the_greeting_and_reads_the_reply()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var replies = new List<string>();
        client.Handshake = async (p, handshake, ct) =>
        {
            await handshake.SendAsync("HELLO 1", ct);
            replies.Add(await handshake.ReceiveAsync(ct));
            await handshake.SendAsync("AUTH x", ct);
            replies.Add(await handshake.ReceiveAsync(ct));
        };

        var connect = client.ConnectAsync(endPoint);
        using var peer = await listener.AcceptAsync().Bounded();
        Assert.That(await SessionSpecKit.ReadLineAsync(peer), Is.EqualTo("HELLO 1"));
        Assert.That(connect.IsCompleted, Is.False, "still in the handshake");
        await peer.SendAsync(Encoding.UTF8.GetBytes("OK 1\n"), SocketFlags.None).Bounded();
        Assert.That(await SessionSpecKit.ReadLineAsync(peer), Is.EqualTo("AUTH x"));
        await peer.SendAsync(Encoding.UTF8.GetBytes("OK 2\n"), SocketFlags.None).Bounded();
        await connect.Bounded();

        Assert.That(replies, Is.EqualTo(new[] { "OK 1", "OK 2" }));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task Lines_sent_in_the_same_TCP_segment_as_the_handshake_reply_reach_OnMessageAsync_in_order()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        string? reply = null;
        client.Handshake = async (p, handshake, ct) =>
        {
            await handshake.SendAsync("hello", ct);
            reply = await handshake.ReceiveAsync(ct);
        };

        var connect = client.ConnectAsync(endPoint);
        using var peer = await listener.AcceptAsync().Bounded();
        Assert.That(await SessionSpecKit.ReadLineAsync(peer), Is.EqualTo("hello"));
        await peer.SendAsync(Encoding.UTF8.GetBytes("welcome\none\ntwo\nthree\n"), SocketFlags.None).Bounded();
        await connect.Bounded();

        Assert.That(reply, Is.EqualTo("welcome"));
        Assert.That(await NextLinesAsync(client, 3), Is.EqualTo(new[] { "one", "two", "three" }));
    }

    [Test]
    public async Task A_partial_line_after_the_handshake_reply_is_completed_by_later_bytes_and_delivered()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        client.Handshake = async (p, handshake, ct) => await handshake.ReceiveAsync(ct);

        var connect = client.ConnectAsync(endPoint);
        using var peer = await listener.AcceptAsync().Bounded();
        await peer.SendAsync(Encoding.UTF8.GetBytes("welcome\nfirst\nsec"), SocketFlags.None).Bounded();
        await connect.Bounded();
        await peer.SendAsync(Encoding.UTF8.GetBytes("ond\nthird\n"), SocketFlags.None).Bounded();

        Assert.That(await NextLinesAsync(client, 3), Is.EqualTo(new[] { "first", "second", "third" }));
    }

    [Test]
    public async Task Lines_buffered_behind_the_handshake_reply_in_a_pipe_reach_OnMessageAsync_in_order_none_lost()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        string? reply = null;
        protocol.Handshake = async (p, handshake, ct) => reply = await handshake.ReceiveAsync(ct);
        var lines = Enumerable.Range(1, 200).Select(i => $"line {i}").ToArray();

        // Everything is already buffered, in one write, before the handshake even starts.
        await SessionSpecKit.WriteAsync(peer.Output, "welcome\n" + string.Concat(lines.Select(l => l + "\n")));
        await protocol.OpenAsync(mine).Bounded();

        Assert.That(reply, Is.EqualTo("welcome"));
        Assert.That(await NextLinesAsync(protocol, lines.Length), Is.EqualTo(lines));
    }

    [Test]
    public async Task A_handshake_that_reads_several_lines_from_one_buffer_leaves_the_rest_to_OnMessageAsync()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var handshakeLines = new List<string>();
        protocol.Handshake = async (p, handshake, ct) =>
        {
            handshakeLines.Add(await handshake.ReceiveAsync(ct));
            handshakeLines.Add(await handshake.ReceiveAsync(ct));
        };

        await SessionSpecKit.WriteAsync(peer.Output, "a\nb\nc\nd\n");
        await protocol.OpenAsync(mine).Bounded();

        Assert.That(handshakeLines, Is.EqualTo(new[] { "a", "b" }));
        Assert.That(await NextLinesAsync(protocol, 2), Is.EqualTo(new[] { "c", "d" }));
    }

    [Test]
    public async Task Lines_the_peer_sent_right_before_closing_after_the_reply_are_still_delivered_then_the_session_ends()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        protocol.Handshake = async (p, handshake, ct) => await handshake.ReceiveAsync(ct);
        await SessionSpecKit.WriteAsync(peer.Output, "welcome\nlast words\nreally last\n");
        await peer.Output.CompleteAsync().Bounded();
        var watched = SessionSpecKit.CollectAsync(protocol.WatchRunstateAsync(), 3);

        await protocol.OpenAsync(mine).Bounded();

        Assert.That(await NextLinesAsync(protocol, 2), Is.EqualTo(new[] { "last words", "really last" }));
        Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Connecting, Runstate.Running, Runstate.Disconnecting }));
        await Assert.ThrowsAsync<EndOfStreamException>(() => protocol.DisconnectAsync().Bounded());
    }

    [Test]
    public async Task SendAsync_during_the_handshake_is_written_before_anything_sent_once_Running()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        protocol.Handshake = async (p, handshake, ct) =>
        {
            await handshake.SendAsync("greeting", ct);
            await handshake.SendAsync("capabilities", ct);
        };

        await protocol.OpenAsync(mine).Bounded();
        await protocol.SendLineAsync("first command").Bounded();

        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input), Is.EqualTo("greeting"));
        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input), Is.EqualTo("capabilities"));
        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input), Is.EqualTo("first command"));
    }

    [Test]
    public async Task A_handshake_that_throws_raises_ConnectException_failed_to_establish_session_wrapping_it()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(client);
        var thrown = new InvalidDataException("unexpected greeting 'garbage'");
        client.Handshake = async (p, handshake, ct) =>
        {
            var greeting = await handshake.ReceiveAsync(ct);
            if (greeting != "QMP")
            {
                throw thrown;
            }
        };

        var connect = client.ConnectAsync(endPoint);
        using var peer = await listener.AcceptAsync().Bounded();
        await peer.SendAsync(Encoding.UTF8.GetBytes("garbage\n"), SocketFlags.None).Bounded();

        var error = await Assert.ThrowsAsync<ConnectException>(() => connect.Bounded());
        using (Assert.EnterMultipleScope())
        {
            Assert.That(error!.ErrorMessage, Is.EqualTo("Failed to establish session"));
            Assert.That(error.InnerException, Is.SameAs(thrown));
            Assert.That(error.Message, Is.EqualTo("Failed to establish session: unexpected greeting 'garbage'"));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(recorder.Transitions, Is.EqualTo(SessionSpecKit.RolledBack));
        }

        Assert.That(await SessionSpecKit.ReadToEndAsync(peer), Is.Empty, "the transport is closed: the peer sees EOF");
    }

    [Test]
    public async Task A_handshake_that_throws_on_a_pipe_completes_the_pipe_and_ends_Idle()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        protocol.Handshake = (_, handshake, _) => throw new InvalidDataException("no");

        var error = await Assert.ThrowsAsync<ConnectException>(() => protocol.OpenAsync(mine).Bounded());

        Assert.That(error!.InnerException, Is.InstanceOf<InvalidDataException>());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input), Is.Empty, "the protocol's output is completed");
    }

    [Test]
    public async Task After_a_failed_handshake_the_same_object_can_establish_a_session()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        protocol.Handshake = (_, handshake, _) => throw new InvalidDataException("first attempt fails");
        await Assert.ThrowsAsync<ConnectException>(() => protocol.OpenAsync(SessionSpecKit.CrossedPipes().Left).Bounded());

        protocol.Handshake = async (p, handshake, ct) => await handshake.SendAsync("hi", ct);
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        await protocol.OpenAsync(mine).Bounded();

        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Running));
        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input), Is.EqualTo("hi"));
    }

    [Test]
    public async Task The_peer_closing_during_the_handshake_raises_ConnectException_wrapping_EndOfStreamException()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        client.Handshake = async (p, handshake, ct) => await handshake.ReceiveAsync(ct);

        var connect = client.ConnectAsync(endPoint);
        using (var peer = await listener.AcceptAsync().Bounded())
        {
            peer.Shutdown(SocketShutdown.Send);
        }

        var error = await Assert.ThrowsAsync<ConnectException>(() => connect.Bounded());
        Assert.That(error!.ErrorMessage, Is.EqualTo("Failed to establish session"));
        Assert.That(error.InnerException, Is.InstanceOf<EndOfStreamException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task The_peer_closing_in_the_middle_of_a_line_during_the_handshake_raises_ConnectException_wrapping_IncompleteFrameException()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        protocol.Handshake = async (p, handshake, ct) => await handshake.ReceiveAsync(ct);
        await SessionSpecKit.WriteAsync(peer.Output, "half a li");
        await peer.Output.CompleteAsync().Bounded();

        var error = await Assert.ThrowsAsync<ConnectException>(() => protocol.OpenAsync(mine).Bounded());

        Assert.That(error!.ErrorMessage, Is.EqualTo("Failed to establish session"));
        Assert.That(error.InnerException, Is.InstanceOf<IncompleteFrameException>());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task The_handshake_runs_in_Connecting_and_its_token_fires_on_hang_up()
    {
        var (mine, _) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var stateDuringHandshake = new TaskCompletionSource<Runstate>(TaskCreationOptions.RunContinuationsAsynchronously);
        var tokenFired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.Handshake = async (p, handshake, ct) =>
        {
            stateDuringHandshake.SetResult(p.Runstate);
            using var registration = ct.Register(() => tokenFired.TrySetResult());
            await Task.Delay(Timeout.Infinite, ct);
        };

        var open = protocol.OpenAsync(mine);
        Assert.That(await stateDuringHandshake.Task.Bounded(), Is.EqualTo(Runstate.Connecting));
        await protocol.DisconnectAsync().Bounded();

        await tokenFired.Task.Bounded();
        await Assert.CatchAsync<OperationCanceledException>(() => open.Bounded());
    }

    [Test]
    public async Task A_handshake_context_used_after_its_handshake_raises_InvalidOperationException_and_takes_nothing_from_the_read_loop()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        HandshakeContext<string>? kept = null;
        left.Handshake = (_, handshake, _) =>
        {
            kept = handshake;
            return Task.CompletedTask;
        };

        await SessionSpecKit.OpenPairAsync(left, right);

        await Assert.ThrowsAsync<InvalidOperationException>(async () => await kept!.ReceiveAsync());
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await kept!.SendAsync("too late"));
        await right.SendLineAsync("still delivered").Bounded();
        Assert.That(await left.NextLineAsync().Bounded(), Is.EqualTo("still delivered"), "the refused read stole nothing from the read loop");
    }

    [Test]
    public async Task The_session_SendAsync_called_by_the_handshake_itself_raises_StateException_Connecting_and_writes_nothing_while_its_context_sends()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        StateException? refused = null;
        protocol.Handshake = async (p, handshake, ct) =>
        {
            refused = await Assert.ThrowsAsync<StateException>(async () => await p.SendLineAsync("not through the context", ct));
            await handshake.SendAsync("through the context", ct);
        };

        await protocol.OpenAsync(mine).Bounded();

        Assert.That(refused!.State, Is.EqualTo(Runstate.Connecting));
        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("through the context"), "only the context's message was written");
    }

    private static async Task<List<string>> NextLinesAsync(LineProtocol protocol, int count)
    {
        var lines = new List<string>();
        for (var i = 0; i < count; i++)
        {
            lines.Add(await protocol.NextLineAsync().Bounded());
        }

        return lines;
    }
}
