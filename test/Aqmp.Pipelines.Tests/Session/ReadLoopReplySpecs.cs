using System.IO.Pipelines;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// Replies sent from <c>OnMessageAsync</c> through its <see cref="MessageContext{TMessage}"/>: the read loop flushes what its handlers sent once it
/// has handled every frame of a read, or as soon as a handler yields, so a reply never waits for
/// the handler that sent it to finish, nor for the next read; sends made after a handler yielded,
/// or on another session, are flushed at once as any other send.
/// </summary>
public class ReadLoopReplySpecs
{
    [Test]
    public async Task A_reply_sent_before_the_handler_waits_reaches_the_peer_while_the_handler_still_waits()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var session = new ReplyingProtocol(async (context, line, token) =>
        {
            await context.SendAsync("re:" + line, token);
            await release.Task.WaitAsync(token);
        });
        var peer = await OpenAsync(session);

        await SessionSpecKit.WriteAsync(peer.Output, "ping\n");

        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("re:ping"), "the reply left before the handler finished");
        release.SetResult();
        await session.DisconnectAsync().Bounded();
    }

    [Test]
    public async Task Replies_to_every_line_of_one_read_arrive_in_order_with_nothing_left_behind()
    {
        await using var session = new ReplyingProtocol((context, line, token) => context.SendAsync("re:" + line, token));
        var peer = await OpenAsync(session);
        var lines = Enumerable.Range(0, 500).Select(i => $"line {i}").ToList();

        await SessionSpecKit.WriteAsync(peer.Output, string.Concat(lines.Select(l => l + "\n")));

        foreach (var line in lines)
        {
            Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("re:" + line));
        }

        await session.DisconnectAsync().Bounded();
    }

    [Test]
    public async Task A_reply_sent_after_the_handler_yielded_is_flushed_by_the_write_loop()
    {
        await using var session = new ReplyingProtocol(async (context, line, token) =>
        {
            await Task.Yield();
            await context.SendAsync("re:" + line, token);
        });
        var peer = await OpenAsync(session);

        await SessionSpecKit.WriteAsync(peer.Output, "ping\n");

        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("re:ping"));
        await session.DisconnectAsync().Bounded();
    }

    [Test]
    public async Task A_send_on_another_session_from_a_handler_that_then_waits_is_flushed_by_that_sessions_write_loop()
    {
        // A proxy: session A forwards each line to session B and waits; B's peer gets it meanwhile.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var forwardTo = new ReplyingProtocol((_, _, _) => ValueTask.CompletedTask);
        var target = await OpenAsync(forwardTo);
        await using var proxy = new ReplyingProtocol(async (_, line, token) =>
        {
            await forwardTo.SendLineAsync("fwd:" + line, token);
            await release.Task.WaitAsync(token);
        });
        var source = await OpenAsync(proxy);

        await SessionSpecKit.WriteAsync(source.Output, "ping\n");

        Assert.That(await SessionSpecKit.ReadLineAsync(target.Input).Bounded(), Is.EqualTo("fwd:ping"));
        release.SetResult();
        await proxy.DisconnectAsync().Bounded();
        await forwardTo.DisconnectAsync().Bounded();
    }

    [Test]
    public async Task Replies_framed_before_a_handler_throws_are_flushed_into_the_transport_before_the_session_ends_with_that_error()
    {
        await using var session = new ReplyingProtocol(async (context, line, token) =>
        {
            await context.SendAsync("re:" + line, token);
            if (line == "boom")
            {
                throw new InvalidOperationException("handler failed");
            }
        });
        var peer = await OpenAsync(session);

        await SessionSpecKit.WriteAsync(peer.Output, "one\nboom\n");

        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("re:one"));
        Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input).Bounded(), Is.EqualTo("re:boom"));
        var rootCause = await Assert.ThrowsAsync<InvalidOperationException>(() => session.DisconnectAsync().Bounded());
        Assert.That(rootCause!.Message, Is.EqualTo("handler failed"));
    }

    private static async Task<IDuplexPipe> OpenAsync(ReplyingProtocol session)
    {
        var (ours, peer) = SessionSpecKit.CrossedPipes();
        await session.OpenAsync(ours).Bounded();
        return peer;
    }

    /// <summary>A line protocol whose handler is given by the test; it replies through its context.</summary>
    private sealed class ReplyingProtocol(Func<MessageContext<string>, string, CancellationToken, ValueTask> handler)
        : PipeProtocol<string>(new Utf8LineFramer(), SessionSpecKit.Quick)
    {
        public ValueTask SendLineAsync(string line, CancellationToken cancellationToken) => SendAsync(line, cancellationToken);

        protected override ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken) => handler(context, message, cancellationToken);
    }
}
