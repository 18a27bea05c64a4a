using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// Input first: a failed write never ends the session before everything already received has
/// been delivered to the handler. A peer that answers and then closes (QEMU after <c>quit</c>)
/// must not lose its last replies because our next write met the closed connection; the write's
/// error is still the root cause.
/// </summary>
public class InputFirstSpecs
{
    private const int Lines = 1000;

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [TestCase(false, TestName = "When_a_write_fails_because_the_peer_closed_every_line_the_peer_sent_before_closing_is_still_delivered_then_the_write_error_is_raised")]
    [TestCase(true, TestName = "When_a_write_fails_because_the_peer_closed_every_line_is_still_delivered_to_a_handler_whose_replies_can_no_longer_be_sent")]
    public async Task When_a_write_fails_every_line_that_arrived_is_delivered(bool handlerReplies)
    {
        using var peer = RawPeer.ListenUnix(_socketFiles);
        var handlerHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ReplyChannel? replies = null;
        var handled = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var client = new LineProtocol(SessionSpecKit.Quick)
        {
            OnLine = async (line, _) =>
            {
                handled.Enqueue(line);
                if (line == "line 0")
                {
                    handlerHeld.TrySetResult();
                    await release.Task; // a slow handler: the rest of the input waits behind it
                }

                if (handlerReplies)
                {
                    await replies!.ReplyAsync("re: " + line);
                }
            },
        };
        replies = new ReplyChannel(client);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using (var accepted = await peer.AcceptAsync())
        {
            // The peer's last words, then it goes away; over a Unix socket they stay readable.
            await accepted.SendAsync(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, Lines).Select(i => $"line {i}\n"))));
        }

        await handlerHeld.Task.Bounded();
        await WriteUntilAWriteFailsAsync(client);
        release.SetResult();

        await SessionSpecKit.WaitUntilAsync(() => handled.Count >= Lines, "every line handled");
        Assert.That(handled, Is.EqualTo(Enumerable.Range(0, Lines).Select(i => $"line {i}")), "every line, in order, though the session was already ending");
        var error = await Assert.CatchAsync<Exception>(() => client.DisconnectAsync().Bounded());
        Assert.That(error, Is.InstanceOf<IOException>().Or.InstanceOf<SocketException>(), $"the failed write is the root cause: {error}");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task When_a_write_fails_while_the_peer_keeps_its_side_open_the_session_stops_reading_after_InputDrainTimeout_and_raises_the_write_error()
    {
        using var peer = RawPeer.ListenUnix(_socketFiles);
        await using var client = new LineProtocol(SessionSpecKit.Quick with { InputDrainTimeout = TimeSpan.FromMilliseconds(200) });
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var accepted = await peer.AcceptAsync();

        // The peer stops reading (our writes fail) but never ends its own output.
        accepted.Shutdown(SocketShutdown.Receive);
        await WriteUntilAWriteFailsAsync(client);

        var error = await Assert.CatchAsync<Exception>(() => client.DisconnectAsync().Bounded());
        Assert.That(error, Is.InstanceOf<IOException>().Or.InstanceOf<SocketException>(), $"the failed write is the root cause: {error}");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), "the read loop was stopped once the bound ran out");
    }

    /// <summary>Keeps sending until the transport reports the failed write and the session ends (a bounded wait).</summary>
    private static async Task WriteUntilAWriteFailsAsync(LineProtocol client)
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        while (client.Runstate == Runstate.Running)
        {
            try
            {
                await client.SendLineAsync("to a peer that is gone", bound.Token);
            }
            catch (StateException)
            {
                break;
            }

            await Task.Delay(5, bound.Token);
        }

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Disconnecting), "the failed write ended the session");
    }

    /// <summary>
    /// A handler's reply: once the output is closed it raises OperationCanceledException in the
    /// handler, which ends that handler only; the session keeps delivering what arrived.
    /// </summary>
    private sealed class ReplyChannel(LineProtocol session)
    {
        public Task ReplyAsync(string line) => session.SendLineAsync(line).AsTask();
    }
}
