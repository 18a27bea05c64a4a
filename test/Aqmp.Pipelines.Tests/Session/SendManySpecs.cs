using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// <c>SendManyAsync</c>: a burst of messages in one call, framed in order under one lock, so no
/// other sender's message comes between them while the transport has room; with backpressure it
/// waits and goes on in order; whatever stops it (a refused message, cancellation), what was sent
/// is a prefix of the burst.
/// </summary>
public class SendManySpecs
{
    [Test]
    public async Task Ten_thousand_lines_sent_in_one_call_arrive_whole_and_in_order()
    {
        var (left, right) = (Own(new LineProtocol(SessionSpecKit.Quick)), Own(new LineProtocol(SessionSpecKit.Quick)));
        await SessionSpecKit.OpenPairAsync(left, right);
        var lines = Enumerable.Range(0, 10_000).Select(i => $"line {i}").ToArray();

        await left.SendLinesAsync(lines).Bounded();

        Assert.That(await right.NextLinesAsync(lines.Length), Is.EqualTo(lines));
    }

    [Test]
    public async Task A_burst_is_not_interleaved_with_another_senders_messages_while_the_transport_has_room()
    {
        var (left, right) = (Own(new LineProtocol(SessionSpecKit.Quick)), Own(new LineProtocol(SessionSpecKit.Quick)));
        await SessionSpecKit.OpenPairAsync(left, right);
        var burst = Enumerable.Range(0, 1000).Select(i => $"burst {i}").ToArray();
        using var stop = new CancellationTokenSource();
        var other = Task.Run(async () =>
        {
            var sent = 0;
            while (!stop.IsCancellationRequested)
            {
                await left.SendLineAsync($"other {sent++}");
                await Task.Delay(1); // a steady trickle, far below what fills the transport
            }

            return sent;
        });

        await Task.Delay(20);
        await left.SendLinesAsync(burst).Bounded();
        await stop.CancelAsync();
        var others = await other.Bounded();

        var received = await right.NextLinesAsync(burst.Length + others);
        var first = received.IndexOf(burst[0]);
        Assert.That(received.GetRange(first, burst.Length), Is.EqualTo(burst), "the burst arrived as one run");
        Assert.That(received.Where(line => line.StartsWith("other ", StringComparison.Ordinal)), Is.EqualTo(Enumerable.Range(0, others).Select(i => $"other {i}")));
    }

    [Test]
    public async Task A_message_refused_in_the_middle_raises_its_error_after_the_ones_before_it_were_sent_and_none_after_it_is()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        await using var session = new RefusingProtocol("refuse me");
        await session.OpenAsync(mine).Bounded();

        var error = await Assert.ThrowsAsync<InvalidDataException>(async () => await session.SendManyAsync(new[] { "one", "two", "refuse me", "four" }));

        Assert.That(error!.Message, Is.EqualTo("refused: refuse me"));
        await session.SendManyAsync(new[] { "after" });
        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("one"));
        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("two"));
        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("after"), "nothing of the burst after the refused message; the session goes on");
        Assert.That(session.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task With_a_peer_that_stopped_reading_a_burst_waits_and_a_cancelled_burst_sent_a_prefix_in_order()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var options = SessionSpecKit.Quick with { SendPauseThreshold = 4096, SendResumeThreshold = 2048, OutboundBatchBytes = 1024 };
        await using var session = new LineProtocol(options);
        await session.OpenAsync(mine).Bounded();
        var burst = Enumerable.Range(0, 20_000).Select(i => $"message {i}").ToArray();

        using var cancel = new CancellationTokenSource();
        var sending = session.SendLinesAsync(burst, cancel.Token).AsTask();
        await Task.Delay(200);
        Assert.That(sending.IsCompleted, Is.False, "the burst waits for the peer to read (backpressure)");
        await cancel.CancelAsync();
        await Assert.CatchAsync<OperationCanceledException>(() => sending.Bounded());

        var reading = Task.Run(async () =>
        {
            var lines = new List<string>();
            string line;
            while ((line = await SessionSpecKit.ReadLineAsync(peer.Input)) != "after")
            {
                lines.Add(line);
            }

            return lines;
        });
        await session.SendLineAsync("after").Bounded();
        var received = await reading.Bounded();

        Assert.That(received, Is.EqualTo(burst.Take(received.Count)), "a prefix of the burst, in order, then the next message");
        Assert.That(received, Has.Count.LessThan(burst.Length));
    }

    private readonly List<IAsyncDisposable> _owned = [];

    [TearDown]
    public async Task DisposeOwnedAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }

        _owned.Clear();
    }

    private T Own<T>(T disposable)
        where T : IAsyncDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    /// <summary>A line protocol whose outbound filter refuses one line.</summary>
    private sealed class RefusingProtocol(string refused) : PipeProtocol<string>(new Utf8LineFramer(), SessionSpecKit.Quick)
    {
        public new ValueTask SendManyAsync(ReadOnlyMemory<string> lines, CancellationToken cancellationToken = default) => base.SendManyAsync(lines, cancellationToken);

        protected override string OnOutbound(string message)
            => message == refused ? throw new InvalidDataException($"refused: {message}") : base.OnOutbound(message);
    }
}
