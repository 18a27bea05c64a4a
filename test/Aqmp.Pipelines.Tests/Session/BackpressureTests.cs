using System.Net;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// Outbound backpressure: the send buffer <c>SendAsync</c> frames into is bounded
/// (<see cref="PipeProtocolOptions.SendPauseThreshold"/>), so a peer that stops reading makes
/// senders wait instead of letting memory grow without bound.
/// </summary>
public class BackpressureTests
{
    private const int LineLength = 4096;

    private static readonly PipeProtocolOptions SmallQueue = new() { SendPauseThreshold = 16 * 1024, SendResumeThreshold = 8 * 1024, OutboundBatchBytes = 4096 };

    [Test]
    public async Task SendLineAsync_waits_while_the_peer_does_not_read_and_every_message_arrives_once_it_does()
    {
        await using var client = new LineProtocol(SmallQueue, name: "client");
        using var peer = RawPeer.ListenTcp(receiveBufferSize: 4096);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var socket = await peer.AcceptAsync();

        var (completed, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendLineAsync(Fill(i)), 64 * 1024 * 1024 / LineLength);

        // The pipe pauses at 1 MiB and the kernel buffers are finite: far less than 64 MiB is queued.
        Assert.That(completed, Is.LessThan(64 * 1024 * 1024 / LineLength));
        await Task.Delay(200);
        Assert.That(pending.IsCompleted, Is.False, "the send stays pending while the peer does not read");

        var reading = Task.Run(() => RawPeer.ReadLinesAsync(socket, completed + 1));
        await pending.Bounded();
        var received = await reading.Bounded();
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, completed + 1).Select(Fill)), "every message arrives, in order");

        var drained = Task.Run(() => RawPeer.ReadToEndAsync(socket));
        await client.DisconnectAsync().Bounded();
        Assert.That(await drained.Bounded(), Is.Empty);
    }

    [Test]
    public async Task A_SendLineAsync_cancelled_while_waiting_for_send_buffer_space_raises_OperationCanceledException_and_is_never_sent()
    {
        await using var client = new LineProtocol(SmallQueue, name: "client");
        using var peer = RawPeer.ListenTcp(receiveBufferSize: 4096);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var socket = await peer.AcceptAsync();
        var (completed, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendLineAsync(Fill(i)), 64 * 1024 * 1024 / LineLength);

        using var cts = new CancellationTokenSource();
        var cancelled = client.SendLineAsync("cancelled", cts.Token).AsTask();
        await Task.Delay(50);
        Assert.That(cancelled.IsCompleted, Is.False, "the send waits for send-buffer space");
        await cts.CancelAsync();
        await Assert.CatchAsync<OperationCanceledException>(() => cancelled.Bounded());

        var after = client.SendLineAsync("after").AsTask();
        var reading = Task.Run(() => RawPeer.ReadLinesAsync(socket, completed + 2));
        await pending.Bounded();
        await after.Bounded();
        var received = await reading.Bounded();

        var expected = Enumerable.Range(0, completed + 1).Select(Fill).Append("after");
        Assert.That(received, Is.EqualTo(expected), "the cancelled message is not sent; the others are, in order");
        var drained = Task.Run(() => RawPeer.ReadToEndAsync(socket));
        await client.DisconnectAsync().Bounded();
        Assert.That(await drained.Bounded(), Is.Empty, "nothing else, in particular not the cancelled message");
    }

    [Test]
    public async Task A_SendLineAsync_waiting_for_send_buffer_space_raises_StateException_when_the_peer_ends_the_session()
    {
        await using var client = new LineProtocol(SmallQueue, name: "client");
        using var peer = RawPeer.ListenTcp(receiveBufferSize: 4096);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        var socket = await peer.AcceptAsync();
        var (_, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendLineAsync(Fill(i)), 64 * 1024 * 1024 / LineLength);
        var change = client.WaitForRunstateChangeAsync();

        socket.Close(); // unread data: the peer resets the connection

        Assert.That(await change.Bounded(), Is.EqualTo(Runstate.Disconnecting));
        var error = await Assert.ThrowsAsync<StateException>(() => pending.Bounded());
        Assert.That(error!.InnerException, Is.Not.Null, "it carries why the session ended");
        await Assert.CatchAsync<Exception>(() => client.DisconnectAsync().Bounded(), "the session ended with an error");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task A_SendLineAsync_waiting_for_send_buffer_space_raises_StateException_when_DisconnectAsync_is_called()
    {
        await using var client = new LineProtocol(SmallQueue, name: "client");
        using var peer = RawPeer.ListenTcp(receiveBufferSize: 4096);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var socket = await peer.AcceptAsync();
        var (completed, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendLineAsync(Fill(i)), 64 * 1024 * 1024 / LineLength);

        var disconnect = client.DisconnectAsync();
        await Assert.ThrowsAsync<StateException>(() => pending.Bounded());
        Assert.That(disconnect.IsCompleted, Is.False, "the drain waits for the peer to read");

        // Everything queued before DisconnectAsync still arrives; the rejected message does not.
        var received = Task.Run(() => RawPeer.ReadToEndAsync(socket));
        await disconnect.Bounded();
        var expected = string.Concat(Enumerable.Range(0, completed).Select(i => Fill(i) + "\n"));
        Assert.That(await received.Bounded(), Is.EqualTo(expected));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task A_fast_sender_and_a_slow_reading_peer_deliver_every_message_with_a_16_KiB_send_buffer()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(SmallQueue, name: "client");
        server.OnLine = async (line, _) =>
        {
            if (line.EndsWith('0'))
            {
                await Task.Yield();
            }
        };
        await SessionConnector.ListenAndConnectAsync(server, client, new IPEndPoint(IPAddress.Loopback, 0));

        for (var i = 0; i < 20_000; i++)
        {
            await client.SendLineAsync($"message {i}").Bounded();
        }

        await client.DisconnectAsync().Bounded();
        using var cts = new CancellationTokenSource(TestTimeouts.Default);
        for (var i = 0; i < 20_000; i++)
        {
            Assert.That(await server.Received.ReadAsync(cts.Token), Is.EqualTo($"message {i}"));
        }

        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    private static string Fill(int i) => $"{i:D6}" + new string('f', LineLength - 6);
}
