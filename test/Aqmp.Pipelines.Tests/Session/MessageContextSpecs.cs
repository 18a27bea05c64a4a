using System.Collections.Concurrent;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// The context <c>OnMessageAsync</c> is given: one instance for every message of a session, and
/// <see cref="MessageContext{TMessage}.EndSession"/>, which ends the session gracefully from the
/// handler without waiting for itself: the reply already sent leaves, nothing more is delivered,
/// and the session returns to <see cref="Runstate.Idle"/> by itself without an error.
/// </summary>
public class MessageContextSpecs
{
    [Test]
    public async Task EndSession_flushes_the_reply_already_sent_delivers_no_further_message_and_the_session_reaches_Idle_without_an_error()
    {
        await using var session = new ContextProtocol(async (context, line, token) =>
        {
            await context.SendAsync("re:" + line, token);
            if (line == "quit")
            {
                context.EndSession();
            }
        });
        var peer = await OpenAsync(session);

        await SessionSpecKit.WriteAsync(peer.Output, "a\nquit\nb\nc\n");

        Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input).Bounded(), Is.EqualTo("re:a\nre:quit\n"), "the replies up to quit, then the end of the stream");
        await session.UntilRunstateAsync(Runstate.Idle);
        Assert.That(session.Handled, Is.EqualTo(new[] { "a", "quit" }), "nothing after quit was handled, though it was in the same read");
        Assert.That(session.EndedWith, Is.EqualTo((true, (Exception?)null)), "the session ended without a root cause");
        await session.DisconnectAsync().Bounded(); // nothing to raise afterwards
    }

    [Test]
    public async Task After_EndSession_the_session_ends_even_while_the_peer_keeps_writing_and_nothing_it_wrote_is_handled()
    {
        await using var session = new ContextProtocol((context, line, _) =>
        {
            if (line == "quit")
            {
                context.EndSession();
            }

            return ValueTask.CompletedTask;
        });
        var peer = await OpenAsync(session);

        await SessionSpecKit.WriteAsync(peer.Output, "quit\n");
        var flooding = Task.Run(async () =>
        {
            var chunk = new string('x', 1023) + "\n";
            for (var i = 0; i < 4096; i++)
            {
                var flush = await peer.Output.WriteAsync(System.Text.Encoding.UTF8.GetBytes(chunk));
                if (flush.IsCompleted)
                {
                    return;
                }
            }
        });

        await session.UntilRunstateAsync(Runstate.Idle);
        await flooding.Bounded();
        Assert.That(session.Handled, Is.EqualTo(new[] { "quit" }));
        Assert.That(session.EndedWith.RootCause, Is.Null);
    }

    [Test]
    public async Task One_context_serves_every_message_of_a_session_and_each_session_gets_its_own()
    {
        var seen = new ConcurrentQueue<MessageContext<string>>();
        await using var session = new ContextProtocol((context, _, _) =>
        {
            seen.Enqueue(context);
            return ValueTask.CompletedTask;
        });

        for (var connection = 0; connection < 2; connection++)
        {
            var peer = await OpenAsync(session);
            await SessionSpecKit.WriteAsync(peer.Output, "one\ntwo\nthree\n");
            await SessionSpecKit.WaitUntilAsync(() => seen.Count == 3 * (connection + 1), "every line handled");
            await session.DisconnectAsync().Bounded();
        }

        var contexts = seen.ToArray();
        Assert.That(contexts[..3], Has.All.SameAs(contexts[0]), "the first session's messages share one context");
        Assert.That(contexts[3..], Has.All.SameAs(contexts[3]), "so do the second's");
        Assert.That(contexts[3], Is.Not.SameAs(contexts[0]), "a new session gets a new context");
    }

    [Test]
    public async Task A_context_kept_past_its_session_neither_sends_into_nor_ends_the_next_session()
    {
        MessageContext<string>? kept = null;
        await using var session = new ContextProtocol((context, _, _) =>
        {
            kept ??= context;
            return ValueTask.CompletedTask;
        });
        var first = await OpenAsync(session);
        await SessionSpecKit.WriteAsync(first.Output, "hello\n");
        await SessionSpecKit.WaitUntilAsync(() => kept is not null, "the first message handled");
        await session.DisconnectAsync().Bounded();

        var second = await OpenAsync(session);
        var send = await Assert.ThrowsAsync<StateException>(async () => await kept!.SendAsync("into the wrong session"));
        var sendMany = await Assert.ThrowsAsync<StateException>(async () => await kept!.SendManyAsync(new[] { "nor", "these" }));
        kept!.EndSession();

        Assert.That(send!.Message, Does.Contain("has ended"));
        Assert.That(sendMany, Is.Not.Null);
        Assert.That(session.Runstate, Is.EqualTo(Runstate.Running), "the new session goes on");
        await session.DisconnectAsync().Bounded();
        Assert.That(await SessionSpecKit.ReadToEndAsync(second.Input).Bounded(), Is.Empty, "nothing was written into the new session");
    }

    private static async Task<System.IO.Pipelines.IDuplexPipe> OpenAsync(ContextProtocol session)
    {
        var (ours, peer) = SessionSpecKit.CrossedPipes();
        await session.OpenAsync(ours).Bounded();
        return peer;
    }

    /// <summary>A line protocol whose handler, given by the test, works through its context.</summary>
    private sealed class ContextProtocol(Func<MessageContext<string>, string, CancellationToken, ValueTask> handler)
        : PipeProtocol<string>(new Utf8LineFramer(), SessionSpecKit.Quick)
    {
        private readonly ConcurrentQueue<string> _handled = new();

        public string[] Handled => [.. _handled];

        public (bool Ran, Exception? RootCause) EndedWith { get; private set; }

        protected override ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken)
        {
            _handled.Enqueue(message);
            return handler(context, message, cancellationToken);
        }

        protected override ValueTask OnSessionEndedAsync(Exception? rootCause)
        {
            EndedWith = (true, rootCause);
            return ValueTask.CompletedTask;
        }
    }
}
