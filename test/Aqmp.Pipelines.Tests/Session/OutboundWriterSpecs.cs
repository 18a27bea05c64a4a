using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Testing;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// The send path of a running session (the internal <c>OutboundWriter</c>), observed through real
/// sessions: senders frame straight into the transport's buffer in their own context and in call
/// order; a framer or <c>OnOutbound</c> that fails before any of its bytes reached the pipe refuses
/// only its message, one that fails after ends the session with that error; under backpressure
/// senders queue unframed, in call order, so a cancelled one is withdrawn and a disconnect releases
/// them with <see cref="StateException"/> while what was framed before still drains.
/// </summary>
public class OutboundWriterSpecs : SessionSpecBase
{
    private const int FillLength = 4096;
    private const int MaxFill = 64 * 1024 * 1024 / FillLength;

    /// <summary>A 16 KiB send buffer flushed every 4 KiB: backpressure after a handful of messages.</summary>
    private static readonly PipeProtocolOptions SmallSendBuffer = SessionSpecKit.Quick with
    {
        SendPauseThreshold = 16 * 1024,
        SendResumeThreshold = 8 * 1024,
        OutboundBatchBytes = 4096,
        DisposeDrainTimeout = TimeSpan.FromSeconds(1),
    };

    private static readonly AsyncLocal<string?> CallerTag = new();

    [ThreadStatic]
    private static string? t_sending;

    // ---- Framer errors -----------------------------------------------------------------------

    [Test]
    public async Task A_framer_that_throws_after_part_of_its_frame_reached_the_pipe_fails_that_send_and_ends_the_session_with_that_error_as_root_cause()
    {
        var framer = new SabotagingFramer();
        var (client, receiver) = await OpenBlobPairAsync(framer);
        await client.SendBlobAsync(Payload(1, 100)).Bounded();
        Assert.That(await receiver.Received.ReadAsync().AsTask().Bounded(), Is.EqualTo(Payload(1, 100)));

        // Writes 10 bytes of its frame, then asks for more room than the buffer has left: the
        // writer commits those 10 bytes to the pipe; then the framer throws.
        var thrown = await Assert.ThrowsAsync<SabotageException>(() => client.SendBlobAsync(SabotagingFramer.BreakOffAfterCommit).AsTask());

        Assert.That(thrown, Is.SameAs(framer.LastError), "the sender gets the framer's own exception");
        await client.UntilRunstateAsync(Runstate.Disconnecting);
        await Assert.ThrowsAsync<StateException>(() => client.SendBlobAsync(Payload(2, 10)).AsTask(), "the session no longer sends");
        var rootCause = await Assert.ThrowsAsync<SabotageException>(() => client.DisconnectAsync().Bounded());
        Assert.That(rootCause, Is.SameAs(thrown), "DisconnectAsync raises that very exception as the root cause");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(client.SessionEnded, Is.SameAs(thrown));
    }

    [TestCase(Refusal.OnOutboundThrows)]
    [TestCase(Refusal.FramerThrowsBeforeWriting)]
    [TestCase(Refusal.FramerThrowsAfterWritingUncommittedBytes)]
    public async Task A_message_refused_before_any_of_its_bytes_reached_the_pipe_fails_only_its_own_send_and_the_messages_around_it_arrive_intact(Refusal refusal)
    {
        var framer = new SabotagingFramer();
        var (client, receiver) = await OpenBlobPairAsync(framer);
        var refusedPayload = refusal switch
        {
            Refusal.OnOutboundThrows => Payload(999, 5),
            Refusal.FramerThrowsBeforeWriting => SabotagingFramer.ThrowBeforeWriting,
            _ => SabotagingFramer.ThrowAfterUncommittedBytes,
        };
        Exception? filterError = null;
        client.Outbound = message =>
        {
            if (refusal == Refusal.OnOutboundThrows && message.Length == 5)
            {
                throw filterError = new SabotageException("OnOutbound refuses this message");
            }

            return message;
        };

        // The messages before it are framed in the same buffer (not awaited one by one), so a
        // refusal that did not forget its own uncommitted bytes would corrupt the stream.
        var before = Enumerable.Range(0, 20).Select(i => client.SendBlobAsync(Payload(i, 30 + i)).AsTask()).ToList();
        var refused = await Assert.CatchAsync<Exception>(() => client.SendBlobAsync(refusedPayload).AsTask());
        var after = Enumerable.Range(20, 20).Select(i => client.SendBlobAsync(Payload(i, 30 + i)).AsTask()).ToList();
        await Task.WhenAll(before.Concat(after)).Bounded();

        Assert.That(refused, Is.TypeOf<SabotageException>());
        Assert.That(refused, Is.SameAs(filterError ?? framer.LastError), "the sender gets the very exception");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running), "the session goes on");
        for (var i = 0; i < 40; i++)
        {
            Assert.That(await receiver.Received.ReadAsync().AsTask().Bounded(), Is.EqualTo(Payload(i, 30 + i)), $"message {i}");
        }

        await client.DisconnectAsync().Bounded();
        Assert.That(client.SessionEnded, Is.Null, "a refused message is not a root cause");
        await Assert.ThrowsAsync<EndOfStreamException>(() => receiver.DisconnectAsync().Bounded(), "the stream ended at a frame boundary");
        Assert.That(receiver.Received.TryRead(out _), Is.False, "nothing of the refused message arrived");
    }

    [Test]
    public async Task A_framer_that_only_asks_for_room_and_then_throws_refuses_only_its_message_even_when_earlier_messages_are_buffered()
    {
        // Deterministic through the queue: the backpressure wait frames the queued "small" message into
        // the buffer, then the sabotaging framer calls GetSpan(64 KiB), which commits "small" to
        // the pipe (none of the sabotaging frame's bytes), and throws.
        var (left, right) = DuplexPipePair.Create(new PipeOptions(pauseWriterThreshold: 16 * 1024, resumeWriterThreshold: 8 * 1024, useSynchronizationContext: false));
        var framer = new SabotagingFramer();
        var client = Own(new ProbeBlobProtocol(framer, SmallSendBuffer));
        await client.OpenAsync(left).Bounded();
        var (framed, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendBlobAsync(Payload(i, FillLength)), 1000);
        var small = client.SendBlobAsync(Payload(1001, 100)).AsTask();
        var askThenThrow = client.SendBlobAsync(SabotagingFramer.AskForRoomThenThrow).AsTask();
        var last = client.SendBlobAsync(Payload(1002, 100)).AsTask();

        var reading = Task.Run(() => ReadFramesAsync(right.Input, framed + 3));
        await pending.Bounded();
        await small.Bounded();
        await Assert.ThrowsAsync<SabotageException>(() => askThenThrow.Bounded());
        await last.Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running), "only that message was refused");
        var frames = await reading.Bounded();
        Assert.That(frames[^2], Is.EqualTo(Payload(1001, 100)));
        Assert.That(frames[^1], Is.EqualTo(Payload(1002, 100)));
        await client.DisconnectAsync().Bounded();
    }

    // ---- What a sent message may reference ------------------------------------------------------

    [Test]
    public async Task A_message_may_point_into_memory_the_sender_overwrites_as_soon_as_SendAsync_returns()
    {
        var (client, receiver) = await OpenBlobPairAsync(new SabotagingFramer());
        var random = new Random(4321);
        var scratch = new byte[20_000];
        var expected = new List<byte[]>();
        for (var i = 0; i < 1000; i++)
        {
            var length = random.Next(0, scratch.Length);
            var payload = Payload(i, length);
            expected.Add(payload);
            payload.CopyTo(scratch, 0);

            // Every third message is made of windows on the same array, the way a pipe hands out data.
            var message = i % 3 == 0
                ? SegmentedSequence.OfSegmentSizeWithoutCopying(scratch.AsMemory(0, length), 1 + random.Next(1, 5000))
                : new ReadOnlySequence<byte>(scratch, 0, length);
            var send = client.SendAsyncOf(message);
            if (!send.IsCompleted)
            {
                await send.Bounded();
            }
            else
            {
                await send;
            }

            scratch.AsSpan().Fill(0xEE); // the sender reuses its buffer at once
        }

        for (var i = 0; i < expected.Count; i++)
        {
            var actual = await receiver.Received.ReadAsync().AsTask().Bounded();
            Assert.That(actual.AsSpan().SequenceEqual(expected[i]), Is.True, $"message {i} arrives as it was when sent ({actual.Length} bytes, expected {expected[i].Length})");
        }

        await client.DisconnectAsync().Bounded();
    }

    // ---- Concurrent senders ------------------------------------------------------------------

    [Test]
    public async Task Eight_threads_sending_ten_thousand_messages_each_deliver_every_message_exactly_once_and_each_threads_in_its_own_order()
    {
        const int Threads = 8;
        const int PerThread = 10_000;
        var server = Own(new LineProtocol(SessionSpecKit.Quick, name: "server"));
        var client = Own(new LineProtocol(SessionSpecKit.Quick, name: "client"));
        await SessionSpecKit.OpenPairAsync(server, client);

        using var start = new Barrier(Threads);
        var senders = Enumerable.Range(0, Threads).Select(thread => Task.Factory.StartNew(
            async () =>
            {
                start.SignalAndWait();
                for (var seq = 0; seq < PerThread; seq++)
                {
                    await client.SendLineAsync($"{thread}:{seq}");
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default).Unwrap()).ToList();

        var next = new int[Threads];
        var problems = new List<string>();
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        for (var n = 0; n < Threads * PerThread; n++)
        {
            var line = await server.Received.ReadAsync(timeout.Token);
            var parts = line.Split(':');
            var thread = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
            var seq = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            if (seq != next[thread] && problems.Count < 10)
            {
                problems.Add($"thread {thread}: expected {next[thread]}, got {seq}");
            }

            next[thread] = seq + 1;
        }

        await Task.WhenAll(senders).Bounded();
        await client.DisconnectAsync().Bounded();
        Assert.That(problems, Is.Empty, "each thread's messages arrive once, in its order");
        Assert.That(next, Is.All.EqualTo(PerThread));
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
        Assert.That(server.Received.TryRead(out var extra), Is.False, $"nothing more arrived ({extra})");
    }

    // ---- Backpressure: the queue of senders -------------------------------------------------------

    [Test]
    public async Task Senders_queued_behind_backpressure_are_sent_in_call_order_and_a_cancelled_one_is_withdrawn_and_never_sent()
    {
        var client = Own(new LineProtocol(SmallSendBuffer, name: "client"));
        using var peer = RawPeer.ListenTcp(receiveBufferSize: 4096);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var socket = await peer.AcceptAsync();
        var (completed, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendLineAsync(Fill(i)), MaxFill);

        var tokens = Enumerable.Range(0, 5).Select(_ => new CancellationTokenSource()).ToList();
        var names = new[] { "A", "B", "C", "D", "E" };
        var sends = names.Select((name, i) => client.SendLineAsync(name, tokens[i].Token).AsTask()).ToList();
        await Task.Delay(50);
        Assert.That(sends.Select(s => s.IsCompleted), Is.All.False, "all five wait while the peer does not read");

        await tokens[2].CancelAsync();
        await Assert.CatchAsync<OperationCanceledException>(() => sends[2].Bounded(), "C is withdrawn");
        Assert.That(sends.Where((_, i) => i != 2).Select(s => s.IsCompleted), Is.All.False, "the others still wait");

        var reading = Task.Run(() => RawPeer.ReadLinesAsync(socket, completed + 1 + 4));
        await pending.Bounded();
        await Task.WhenAll(sends.Where((_, i) => i != 2)).Bounded();
        var received = await reading.Bounded();

        Assert.That(received.Take(completed + 1), Is.EqualTo(Enumerable.Range(0, completed + 1).Select(Fill)));
        Assert.That(received.Skip(completed + 1), Is.EqualTo(new[] { "A", "B", "D", "E" }), "in call order, without C");
        var rest = Task.Run(() => RawPeer.ReadToEndAsync(socket));
        await client.DisconnectAsync().Bounded();
        Assert.That(await rest.Bounded(), Is.Empty, "C never arrives");
        tokens.ForEach(t => t.Dispose());
    }

    [Test]
    public async Task Every_sender_queued_behind_backpressure_gets_StateException_from_DisconnectAsync_and_sends_nothing_while_what_was_framed_before_drains()
    {
        var client = Own(new LineProtocol(SmallSendBuffer, name: "client"));
        using var peer = RawPeer.ListenTcp(receiveBufferSize: 4096);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var socket = await peer.AcceptAsync();
        var (completed, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendLineAsync(Fill(i)), MaxFill);
        using var cts = new CancellationTokenSource();
        var queued = new List<Task> { pending };
        queued.AddRange(Enumerable.Range(0, 4).Select(i => client.SendLineAsync($"queued {i}", i % 2 == 0 ? cts.Token : default).AsTask()));
        queued.Add(Task.Run(() => client.SendLineAsync("queued from another thread").AsTask()));
        await Task.Delay(50);
        Assert.That(queued.Select(q => q.IsCompleted), Is.All.False);

        var disconnect = client.DisconnectAsync();
        foreach (var send in queued)
        {
            await Assert.ThrowsAsync<StateException>(() => send.Bounded(), "released: the message was not sent");
        }

        Assert.That(disconnect.IsCompleted, Is.False, "the drain waits for the peer to read what was framed");
        var received = Task.Run(() => RawPeer.ReadToEndAsync(socket));
        await disconnect.Bounded();
        var expected = string.Concat(Enumerable.Range(0, completed).Select(i => Fill(i) + "\n"));
        Assert.That(await received.Bounded(), Is.EqualTo(expected), "exactly what was framed before DisconnectAsync arrives");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    // ---- OnOutbound ----------------------------------------------------------------------

    [Test]
    public async Task OnOutbound_runs_in_each_senders_own_context_exactly_once_per_message_in_wire_order()
    {
        const int Threads = 4;
        const int PerThread = 2000;

        // No backpressure on these pipes: every send frames at once, in its caller's context.
        var (left, right) = DuplexPipePair.Create(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
        var client = Own(new ProbeLineProtocol(SessionSpecKit.Quick));
        var server = Own(new LineProtocol(SessionSpecKit.Quick, name: "server"));
        await Task.WhenAll(client.OpenAsync(left), server.OpenAsync(right)).Bounded();
        var seen = new List<string>(Threads * PerThread);
        var outOfContext = new List<string>();
        client.Outbound = line =>
        {
            // Called under the writer's lock: the order of this list is the wire order.
            seen.Add(line);
            if (CallerTag.Value != line || t_sending != line)
            {
                outOfContext.Add($"{line} (AsyncLocal {CallerTag.Value}, thread's {t_sending})");
            }

            return line;
        };

        var senders = Enumerable.Range(0, Threads).Select(thread => Task.Run(async () =>
        {
            for (var seq = 0; seq < PerThread; seq++)
            {
                var line = $"{thread}:{seq}";
                CallerTag.Value = line;
                t_sending = line;
                var send = client.SendLineAsync(line);
                t_sending = null;
                await send;
            }
        })).ToList();
        await Task.WhenAll(senders).Bounded();
        var received = await server.NextLinesAsync(Threads * PerThread);
        await client.DisconnectAsync().Bounded();

        Assert.That(outOfContext, Is.Empty, "OnOutbound ran in the sender's async flow and on its thread");
        Assert.That(seen, Is.EqualTo(received), "once per message, in the order the peer receives them");
        Assert.That(seen.Distinct().Count(), Is.EqualTo(Threads * PerThread));
    }

    [Test]
    public async Task Under_backpressure_OnOutbound_runs_once_per_queued_message_in_wire_order_and_never_for_a_withdrawn_one()
    {
        var (left, right) = DuplexPipePair.Create(new PipeOptions(pauseWriterThreshold: 16 * 1024, resumeWriterThreshold: 8 * 1024, useSynchronizationContext: false));
        var client = Own(new ProbeLineProtocol(SmallSendBuffer));
        await client.OpenAsync(left).Bounded();
        var seen = new List<string>();
        client.Outbound = line =>
        {
            seen.Add(line);
            return line;
        };
        var (framed, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendLineAsync(Fill(i)), MaxFill);
        Assert.That(seen, Has.Count.EqualTo(framed), "the pending message was not filtered yet: it is not framed");

        using var cancel = new CancellationTokenSource();
        var a = client.SendLineAsync("A").AsTask();
        var b = client.SendLineAsync("B", cancel.Token).AsTask();
        var c = client.SendLineAsync("C").AsTask();
        await cancel.CancelAsync();
        await Assert.CatchAsync<OperationCanceledException>(() => b.Bounded());

        var reading = Task.Run(() => ReadLinesAsync(right.Input, framed + 3));
        await Task.WhenAll(pending, a, c).Bounded();
        var received = await reading.Bounded();
        await client.DisconnectAsync().Bounded();

        Assert.That(received.TakeLast(2), Is.EqualTo(new[] { "A", "C" }));
        Assert.That(seen, Is.EqualTo(received), "once per message, in wire order, never for the withdrawn B");
    }

    [Test]
    public async Task Under_backpressure_OnOutbound_of_a_queued_sender_still_sees_the_senders_AsyncLocal_values()
    {
        var (left, right) = DuplexPipePair.Create(new PipeOptions(pauseWriterThreshold: 16 * 1024, resumeWriterThreshold: 8 * 1024, useSynchronizationContext: false));
        var client = Own(new ProbeLineProtocol(SmallSendBuffer));
        await client.OpenAsync(left).Bounded();
        var seenTags = new List<(string Line, string? Tag)>();
        client.Outbound = line =>
        {
            seenTags.Add((line, CallerTag.Value));
            return line;
        };
        var (framed, pending) = await SessionSpecKit.SendUntilOneStaysPendingAsync(i => client.SendLineAsync(Fill(i)), MaxFill);

        var queued = new[] { "A", "B", "C" }.Select(line => SendTaggedAsync(client, line)).ToList();
        var reading = Task.Run(() => ReadLinesAsync(right.Input, framed + 4));
        await Task.WhenAll(queued.Append(pending)).Bounded();
        await reading.Bounded();
        await client.DisconnectAsync().Bounded();

        Assert.That(seenTags.TakeLast(3), Is.EqualTo(new[] { ("A", (string?)"A"), ("B", "B"), ("C", "C") }));

        static async Task SendTaggedAsync(ProbeLineProtocol client, string line)
        {
            CallerTag.Value = line; // this async method's own flow: the caller's value is restored on return
            await client.SendLineAsync(line);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    public enum Refusal
    {
        OnOutboundThrows,
        FramerThrowsBeforeWriting,
        FramerThrowsAfterWritingUncommittedBytes,
    }

    /// <summary>A payload that says which message it is: its number, then a pattern of that number.</summary>
    private static byte[] Payload(int number, int length)
    {
        var payload = new byte[length];
        for (var i = 0; i < length; i++)
        {
            payload[i] = (byte)((number * 7) + i);
        }

        if (length >= 4)
        {
            BinaryPrimitives.WriteInt32BigEndian(payload, number);
        }

        return payload;
    }

    private static string Fill(int i) => $"{i:D6}" + new string('f', FillLength - 6);

    private async Task<(ProbeBlobProtocol Client, BlobProtocol Receiver)> OpenBlobPairAsync(SabotagingFramer framer)
    {
        var (left, right) = SessionSpecKit.CrossedPipes();
        var client = Own(new ProbeBlobProtocol(framer, SessionSpecKit.Quick));
        var receiver = Own(new BlobProtocol(new LengthPrefixedFramer(), SessionSpecKit.Quick));
        await Task.WhenAll(client.OpenAsync(left), receiver.OpenAsync(right)).Bounded();
        return (client, receiver);
    }

    /// <summary>Reads <paramref name="count"/> length-prefixed frames from a pipe (fewer if it completes first).</summary>
    private static async Task<List<byte[]>> ReadFramesAsync(PipeReader input, int count)
    {
        var framer = new LengthPrefixedFramer();
        var frames = new List<byte[]>();
        while (frames.Count < count)
        {
            var result = await input.ReadAsync();
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = buffer.Start;
            while (frames.Count < count && framer.TryReadMessage(buffer.Slice(consumed), ref consumed, ref examined, out var frame))
            {
                frames.Add(frame.ToArray());
            }

            input.AdvanceTo(consumed, frames.Count < count ? buffer.End : consumed);
            if (result.IsCompleted)
            {
                break;
            }
        }

        return frames;
    }

    /// <summary>Reads <paramref name="count"/> '\n'-terminated lines from a pipe (fewer if it completes first).</summary>
    private static async Task<List<string>> ReadLinesAsync(PipeReader input, int count)
    {
        var lines = new List<string>();
        while (lines.Count < count)
        {
            var result = await input.ReadAsync();
            var reader = new SequenceReader<byte>(result.Buffer);
            while (lines.Count < count && reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
            {
                lines.Add(Encoding.UTF8.GetString(line));
            }

            input.AdvanceTo(reader.Position, lines.Count < count ? result.Buffer.End : reader.Position);
            if (result.IsCompleted)
            {
                break;
            }
        }

        return lines;
    }

    /// <summary>The exception the sabotaging framer and filters throw.</summary>
    private sealed class SabotageException(string message) : Exception(message);

    /// <summary>
    /// The length-prefixed framer, except for one-byte messages that are commands to misbehave
    /// while writing. Reads like <see cref="LengthPrefixedFramer"/>.
    /// </summary>
    private sealed class SabotagingFramer : IMessageFramer<ReadOnlySequence<byte>>
    {
        private readonly LengthPrefixedFramer _inner = new();
        private Exception? _lastError;

        /// <summary>Writes 10 bytes of a frame, asks for more room than is left (the writer commits them), throws.</summary>
        public static byte[] BreakOffAfterCommit => [0xA1];

        /// <summary>Throws before touching the output.</summary>
        public static byte[] ThrowBeforeWriting => [0xA2];

        /// <summary>Writes and advances a few bytes within the current buffer (no new buffer asked), throws.</summary>
        public static byte[] ThrowAfterUncommittedBytes => [0xA3];

        /// <summary>Asks for 64 KiB of room (more than any buffer has left), writes nothing, throws.</summary>
        public static byte[] AskForRoomThenThrow => [0xA4];

        public Exception? LastError => Volatile.Read(ref _lastError);

        public long? MaximumFrameLength => _inner.MaximumFrameLength;

        public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
            => _inner.TryReadMessage(input, ref consumed, ref examined, out message);

        public void WriteMessage(ReadOnlySequence<byte> message, IBufferWriter<byte> output)
        {
            if (message.Length != 1)
            {
                _inner.WriteMessage(message, output);
                return;
            }

            switch (message.FirstSpan[0])
            {
                case 0xA1:
                    {
                        var span = output.GetSpan(10);
                        BinaryPrimitives.WriteInt32BigEndian(span, 100);
                        span[4..10].Fill(0x55);
                        output.Advance(10);
                        var left = output.GetSpan().Length;
                        output.GetSpan(left + 1);
                        throw Record("broke off after 10 bytes reached the pipe");
                    }

                case 0xA2:
                    throw Record("refused before writing");
                case 0xA3:
                    {
                        var span = output.GetSpan();
                        var count = Math.Min(span.Length, 8);
                        span[..count].Fill(0x66);
                        output.Advance(count);
                        throw Record("refused after writing uncommitted bytes");
                    }

                case 0xA4:
                    output.GetSpan(64 * 1024);
                    throw Record("refused after asking for room");
                default:
                    _inner.WriteMessage(message, output);
                    return;
            }
        }

        private SabotageException Record(string what)
        {
            var error = new SabotageException(what);
            Volatile.Write(ref _lastError, error);
            return error;
        }
    }

    /// <summary>A binary protocol with a pluggable outbound filter, recording what arrives and its root cause.</summary>
    private sealed class ProbeBlobProtocol(IMessageFramer<ReadOnlySequence<byte>> framer, PipeProtocolOptions options)
        : PipeProtocol<ReadOnlySequence<byte>>(framer, options)
    {
        public Func<ReadOnlySequence<byte>, ReadOnlySequence<byte>>? Outbound { get; set; }

        public Exception? SessionEnded { get; private set; }

        public ValueTask SendBlobAsync(byte[] payload, CancellationToken cancellationToken = default)
            => SendAsync(new ReadOnlySequence<byte>(payload), cancellationToken);

        public ValueTask SendAsyncOf(ReadOnlySequence<byte> message) => SendAsync(message);

        protected override ReadOnlySequence<byte> OnOutbound(ReadOnlySequence<byte> message)
            => Outbound is { } outbound ? outbound(message) : message;

        protected override ValueTask OnSessionEndedAsync(Exception? rootCause)
        {
            SessionEnded = rootCause;
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>A line protocol with a pluggable outbound filter.</summary>
    private sealed class ProbeLineProtocol(PipeProtocolOptions options) : PipeProtocol<string>(new Utf8LineFramer(), options)
    {
        public Func<string, string>? Outbound { get; set; }

        public ValueTask SendLineAsync(string line, CancellationToken cancellationToken = default) => SendAsync(line, cancellationToken);

        protected override string OnOutbound(string message) => Outbound is { } outbound ? outbound(message) : message;
    }
}
