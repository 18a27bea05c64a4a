using System.Buffers;
using System.Diagnostics;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.HostileInput;

/// <summary>
/// Oversize frames from a hostile peer over a real Unix socket: a peer that streams a line without
/// ever sending a newline (up to 1 GiB, as fast as the socket takes it), a line that crosses the
/// limit before its newline arrives, and lines exactly at the limit. The session ends with
/// <see cref="FrameTooLargeException"/> as soon as the limit is crossed, while the managed heap
/// grows by no more than what the session may hold of it.
/// </summary>
/// <remarks>
/// <para>
/// <b>The bound, from the source.</b> A stream transport reads inline: the read loop's
/// <c>PipeReader</c> (System.IO.Pipelines' stream reader) reads the socket only when the loop asks
/// for more, at most <see cref="PipeProtocolOptions.ReceiveBufferSize"/> (64 KiB) per read, and
/// nothing reads ahead. While a line is unterminated the framer examines everything it is given
/// and raises as soon as more than the limit is buffered, so before the read that raised, at most
/// the limit was held, plus one byte that may be the CR of a CRLF: when the framer raises, the
/// session holds at most limit + 1 + one read
/// (<see cref="OversizeLineBound"/>). That is what <see cref="FrameTooLargeException.ObservedLength"/>
/// must stay within.
/// </para>
/// <para>
/// What the session holds when it ends (the heap that survives a full collection forced the moment
/// it enters <see cref="Runstate.Disconnecting"/>, over a settled baseline) is allowed that bound
/// plus <see cref="MemorySlack"/> (4 MiB) for what the session does not hold: the peer's 64 KiB
/// buffer, sockets, tasks. Garbage not yet collected is not counted: how much of it piles up
/// depends on the host's GC budget, not on the library. Memory figures are process-wide, so the
/// fixture does not run in parallel.
/// </para>
/// </remarks>
[NonParallelizable]
public sealed class OversizeFrameTests
{
    private const long OneGiB = 1L << 30;
    private const long MiB = 1024 * 1024;
    private const long MemorySlack = 4 * MiB;

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [TestCase(64 * 1024, TestName = "A_1_GiB_line_without_a_newline_ends_a_64_KiB_limit_line_session_with_FrameTooLargeException_and_managed_growth_stays_under_the_limit_plus_one_64_KiB_read_plus_4_MiB")]
    [TestCase(64 * 1024 * 1024, TestName = "A_1_GiB_line_without_a_newline_ends_a_64_MiB_limit_line_session_with_FrameTooLargeException_and_managed_growth_stays_under_the_limit_plus_one_read_plus_4_MiB")]
    public async Task A_1_GiB_line_without_a_newline_ends_a_line_session(int limit)
    {
        var framer = new Utf8LineFramer(limit);
        var bound = OversizeLineBound(limit, PipeProtocolOptions.Default);
        using var listener = HostileListener.Listen(_socketFiles);
        await using var protocol = new LineProtocol(framer: framer);

        using var memory = HostileMemorySampler.Start();
        var liveGrowthWhenEnded = memory.LiveGrowthWhenDisconnecting(protocol);
        var connecting = protocol.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        await connecting.Bounded();

        var flood = await peer.FloodAsync(OneGiB).Bounded();
        await protocol.UntilRunstateAsync(Runstate.Disconnecting);
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => protocol.DisconnectAsync().Bounded());
        memory.Stop();
        var end = await peer.ReadUntilClosedAsync().Bounded();

        Report(flood, error!, end, memory, bound, liveGrowthWhenEnded());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(error!.MaximumLength, Is.EqualTo(limit));
        Assert.That(error.ObservedLength, Is.InRange(limit + 1L, bound), "the frame was found too large with no more buffered than the pipe may hold");
        Assert.That(flood.Error, Is.Not.Null, "the peer's send failed because the client closed the connection");
        Assert.That(flood.BytesWritten, Is.LessThan(OneGiB), "the session ended long before the whole gigabyte");
        Assert.That(protocol.SessionEnded.RootCause, Is.SameAs(error), "the session-ended hook saw the same root cause");
        Assert.That(liveGrowthWhenEnded(), Is.InRange(0, bound + MemorySlack),
            $"managed growth stays within the session's bound ({HostileMemorySampler.Mib(bound)}: limit + one 64 KiB read) plus {HostileMemorySampler.Mib(MemorySlack)}");
    }

    [Test]
    public async Task An_unterminated_64_MiB_limit_line_is_found_too_large_with_no_more_than_the_limit_plus_one_read_buffered_as_LineFramer_documents()
    {
        const int Limit = 64 * 1024 * 1024;
        using var listener = HostileListener.Listen(_socketFiles);
        await using var protocol = new LineProtocol(framer: new Utf8LineFramer(Limit));
        var connecting = protocol.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        await connecting.Bounded();

        await peer.FloodAsync(OneGiB).Bounded();
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => protocol.DisconnectAsync().Bounded());

        var options = PipeProtocolOptions.Default;
        Assert.That(error!.ObservedLength, Is.LessThanOrEqualTo(OversizeLineBound(Limit, options)), "the limit, a CR, plus one read: not twice the limit");
    }

    [Test]
    public async Task A_read_loop_that_falls_behind_reads_nothing_ahead_so_a_flooding_peer_is_held_back_by_the_socket_buffers_and_the_framer_raises_within_the_limit_plus_one_read()
    {
        const int Limit = 1024 * 1024;
        var inner = new Utf8LineFramer(Limit);
        var options = PipeProtocolOptions.Default;
        var framer = new StallingFramer(inner, stallAt: Limit - 100);
        using var listener = HostileListener.Listen(_socketFiles);
        await using var session = new AnyLineSession(framer);
        var connecting = session.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        await connecting.Bounded();

        // The read loop examines limit - 100 bytes and stalls there (a busy machine in slow
        // motion) while the peer floods: nothing reads the socket until the loop asks for more.
        await peer.SendAsync(Filled(Limit - 100)).Bounded();
        await framer.Stalled.Task.Bounded();
        var flooding = peer.FloodAsync(64 * MiB);
        await Task.Delay(300);
        framer.Release.Set();

        var flood = await flooding.Bounded();
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => session.DisconnectAsync().Bounded());

        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.Name}: observed {error!.ObservedLength:N0} bytes when raised (bound {OversizeLineBound(Limit, options):N0}); the peer wrote {flood.BytesWritten:N0} bytes of its flood before the client closed");
        Assert.That(error.ObservedLength, Is.InRange(Limit + 1L, OversizeLineBound(Limit, options)), "the limit, a CR, plus one read");
        Assert.That(flood.Error, Is.Not.Null, "the peer's send failed because the client closed the connection");
        Assert.That(flood.BytesWritten, Is.LessThanOrEqualTo(options.ReceiveBufferSize + MemorySlack), "what the peer could write: one read, plus the kernel's socket buffers; no read-ahead");
    }

    [TestCase(64 * 1024, true, TestName = "A_line_one_byte_over_a_64_KiB_limit_with_its_newline_in_the_same_write_ends_the_session_with_FrameTooLargeException")]
    [TestCase(64 * 1024, false, TestName = "A_line_one_byte_over_a_64_KiB_limit_ends_the_session_with_FrameTooLargeException_before_its_newline_arrives")]
    [TestCase(16 * 1024 * 1024, true, TestName = "A_line_one_byte_over_a_16_MiB_limit_with_its_newline_in_the_same_write_ends_the_session_with_FrameTooLargeException")]
    [TestCase(16 * 1024 * 1024, false, TestName = "A_line_one_byte_over_a_16_MiB_limit_ends_the_session_with_FrameTooLargeException_before_its_newline_arrives")]
    public async Task A_line_one_byte_over_the_limit_ends_the_session(int limit, bool newlineInSameWrite)
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var protocol = new LineProtocol(framer: new Utf8LineFramer(limit));
        var connecting = protocol.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        await connecting.Bounded();

        var oversize = new byte[limit + 1 + (newlineInSameWrite ? 1 : 0)];
        oversize.AsSpan(0, limit + 1).Fill((byte)'x');
        if (newlineInSameWrite)
        {
            oversize[^1] = (byte)'\n';
        }

        await peer.SendRawAsync("before\n").Bounded();
        Assert.That(await protocol.NextLineAsync(), Is.EqualTo("before"));
        await peer.SendAsync(oversize).Bounded();
        await protocol.UntilRunstateAsync(Runstate.Disconnecting);
        if (!newlineInSameWrite)
        {
            // The newline that would have ended the frame: the session did not wait for it.
            try
            {
                await peer.SendRawAsync("\nafter\n").Bounded();
            }
            catch (System.Net.Sockets.SocketException)
            {
                // The client has closed already.
            }
        }

        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => protocol.DisconnectAsync().Bounded());
        Assert.That(error!.MaximumLength, Is.EqualTo(limit));
        Assert.That(error.ObservedLength, Is.GreaterThan(limit));
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(protocol.Received.TryRead(out var extra), Is.False, $"nothing after the oversize line is delivered (got '{extra}')");
        var end = await peer.ReadUntilClosedAsync().Bounded();
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.Name}: observed {error.ObservedLength} bytes; peer saw {end.How}");
    }

    [TestCase(64 * 1024, "\n", TestName = "A_line_of_exactly_a_64_KiB_limit_ending_in_LF_is_delivered_whole_and_the_session_goes_on")]
    [TestCase(64 * 1024, "\r\n", TestName = "A_line_of_exactly_a_64_KiB_limit_ending_in_CRLF_is_delivered_whole_and_the_session_goes_on")]
    [TestCase(16 * 1024 * 1024, "\n", TestName = "A_line_of_exactly_a_16_MiB_limit_is_delivered_whole_and_the_session_goes_on")]
    [TestCase(16 * 1024 * 1024, "\r\n", TestName = "A_line_of_exactly_a_16_MiB_limit_ending_in_CRLF_is_delivered_whole_and_the_session_goes_on")]
    public async Task A_line_of_exactly_the_limit_is_delivered(int limit, string terminator)
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var protocol = new LineProtocol(framer: new Utf8LineFramer(limit));
        var connecting = protocol.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        await connecting.Bounded();
        var line = PatternLine(limit);

        var clock = Stopwatch.StartNew();
        await peer.SendRawAsync(line + terminator + "next\n").Bounded();

        Assert.That(await protocol.NextLineAsync(), Is.EqualTo(line), "the whole line, terminator stripped");
        Assert.That(await protocol.NextLineAsync(), Is.EqualTo("next"));
        await protocol.SendLineAsync("ack").Bounded();
        Assert.That(await peer.ReadLineAsync().Bounded(), Is.EqualTo("ack"));
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.Name}: {limit} bytes delivered in {clock.ElapsedMilliseconds} ms");

        var closing = peer.ReadUntilClosedAsync();
        await protocol.DisconnectAsync().Bounded();
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That((await closing.Bounded()).How, Is.EqualTo("end of stream"), "a clean close");
    }

    [TestCase(QmpFramer.DefaultMaximumMessageLength, TestName = "A_1_GiB_message_without_a_newline_ends_a_QmpClient_session_at_the_default_10_MiB_limit_with_FrameTooLargeException_and_managed_growth_stays_under_the_limit_plus_one_read_plus_4_MiB")]
    [TestCase(1024 * 1024, TestName = "A_1_GiB_message_without_a_newline_ends_a_QmpClient_session_at_a_1_MiB_MaximumMessageLength_with_FrameTooLargeException_and_managed_growth_stays_under_the_limit_plus_one_read_plus_4_MiB")]
    public async Task A_1_GiB_message_without_a_newline_ends_a_QmpClient_session(int limit)
    {
        var options = limit == QmpFramer.DefaultMaximumMessageLength ? QmpClientOptions.Default : new QmpClientOptions { MaximumMessageLength = limit };
        var bound = OversizeLineBound(limit, options.Session);
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient(options);

        using var memory = HostileMemorySampler.Start();
        var liveGrowthWhenEnded = memory.LiveGrowthWhenDisconnecting(client);
        using var peer = await listener.ConnectQmpAsync(client);
        using var events = client.Listen();
        var execute = client.ExecuteAsync("query-status");
        await peer.ReadCommandAsync();

        var flood = await peer.FloodAsync(OneGiB, prefix: """{"event":"FLOOD","data":{"text":" """u8.ToArray()).Bounded();
        await client.UntilRunstateAsync(Runstate.Disconnecting);
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => client.DisconnectAsync().Bounded());
        memory.Stop();
        var end = await peer.ReadUntilClosedAsync().Bounded();

        Report(flood, error!, end, memory, bound, liveGrowthWhenEnded());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(error!.MaximumLength, Is.EqualTo(limit));
        Assert.That(error.ObservedLength, Is.InRange(limit + 1L, bound));
        Assert.That(flood.Error, Is.Not.Null, "the peer's send failed because the client closed the connection");
        var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
        Assert.That(interrupted!.InnerException, Is.SameAs(error), "the pending execute reports the root cause");
        var (received, listenerError) = await DrainAsync(events);
        Assert.That(received, Is.Zero);
        Assert.That(listenerError, Is.SameAs(error), "the listener ends with the root cause");
        Assert.That(liveGrowthWhenEnded(), Is.InRange(0, bound + MemorySlack),
            $"managed growth stays within the session's bound ({HostileMemorySampler.Mib(bound)}) plus {HostileMemorySampler.Mib(MemorySlack)}");
    }

    [Test]
    public async Task A_1_GiB_greeting_without_a_newline_fails_ConnectAsync_with_QmpNegotiationException_caused_by_FrameTooLargeException_and_managed_growth_stays_under_the_limit_plus_one_read_plus_4_MiB()
    {
        var bound = OversizeLineBound(QmpFramer.DefaultMaximumMessageLength, PipeProtocolOptions.Default);
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();

        using var memory = HostileMemorySampler.Start();
        var liveGrowthWhenEnded = memory.LiveGrowthWhenDisconnecting(client);
        var connecting = client.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        var flood = await peer.FloodAsync(OneGiB, prefix: """{"QMP":{"version":{"qemu":{"micro":1,"minor":2,"major":9},"package":" """u8.ToArray()).Bounded();
        var failure = await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.Bounded());
        memory.Stop();
        var end = await peer.ReadUntilClosedAsync().Bounded();

        var error = failure!.InnerException as FrameTooLargeException;
        Assert.That(error, Is.Not.Null, $"the cause is FrameTooLargeException: {failure}");
        Report(flood, error!, end, memory, bound, liveGrowthWhenEnded());
        Assert.That(failure.Message, Does.Contain("oversize"));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), "the attempt rolled back");
        Assert.That(error!.MaximumLength, Is.EqualTo(QmpFramer.DefaultMaximumMessageLength));
        Assert.That(error.ObservedLength, Is.InRange(QmpFramer.DefaultMaximumMessageLength + 1L, bound));
        Assert.That(flood.Error, Is.Not.Null, "the peer's send failed because the client closed the connection");
        Assert.That(end.BytesReceived, Is.Zero, "the client sent nothing: it never saw a greeting");
        Assert.That(liveGrowthWhenEnded(), Is.InRange(0, bound + MemorySlack), "managed growth up to the moment the attempt failed");
    }

    [TestCase(0, TestName = "A_reply_line_of_exactly_the_default_10_MiB_limit_is_accepted_and_the_session_goes_on")]
    [TestCase(1, TestName = "A_reply_line_one_byte_over_the_default_10_MiB_limit_interrupts_the_execute_and_ends_the_session_with_FrameTooLargeException")]
    public async Task A_reply_line_at_the_QmpClient_limit(int over)
    {
        const int Limit = QmpFramer.DefaultMaximumMessageLength;
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        using var peer = await listener.ConnectQmpAsync(client);
        var execute = client.ExecuteAsync("x-huge");
        var (_, id) = await peer.ReadCommandAsync();

        const string Head = "{\"return\":\"";
        var tail = "\",\"id\":" + id + "}";
        var padding = Limit + over - Head.Length - tail.Length;
        var line = string.Concat(Head, PatternLine(padding), tail);
        Assert.That(Encoding.UTF8.GetByteCount(line), Is.EqualTo(Limit + over), "the line's length, excluding its terminator");
        await peer.SendRawAsync(line + "\r\n").Bounded();

        if (over == 0)
        {
            var value = await execute.Bounded();
            Assert.That(value.GetString(), Has.Length.EqualTo(padding));
            var next = client.ExecuteAsync("query-status");
            var (_, nextId) = await peer.ReadCommandAsync();
            await peer.SendLinesAsync(HostileConnection.ReturnJson(nextId, """{"status":"running"}""")).Bounded();
            Assert.That((await next.Bounded()).GetProperty("status").GetString(), Is.EqualTo("running"));
            var closing = peer.ReadUntilClosedAsync();
            await client.DisconnectAsync().Bounded();
            Assert.That((await closing.Bounded()).How, Is.EqualTo("end of stream"));
        }
        else
        {
            var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
            var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => client.DisconnectAsync().Bounded());
            Assert.That(interrupted!.InnerException, Is.SameAs(error));
            Assert.That(error!.MaximumLength, Is.EqualTo(Limit));
            Assert.That(error.ObservedLength, Is.GreaterThan(Limit));
            await peer.ReadUntilClosedAsync().Bounded();
        }

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    private static byte[] Filled(int length)
    {
        var bytes = new byte[length];
        bytes.AsSpan().Fill((byte)'x');
        return bytes;
    }

    /// <summary>A line session over any framer, that ignores what it receives.</summary>
    private sealed class AnyLineSession(IMessageFramer<string> framer) : PipeProtocol<string>(framer)
    {
        protected override ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>A framer that, the first time it is given <c>stallAt</c> bytes or more, stalls the read loop until released.</summary>
    private sealed class StallingFramer(Utf8LineFramer inner, long stallAt) : IMessageFramer<string>
    {
        public TaskCompletionSource Stalled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ManualResetEventSlim Release { get; } = new();

        public long? MaximumFrameLength => inner.MaximumFrameLength;

        public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out string message)
        {
            if (input.Length >= stallAt && Stalled.TrySetResult())
            {
                Release.Wait(TestTimeouts.Default);
            }

            return inner.TryReadMessage(input, ref consumed, ref examined, out message);
        }

        public void WriteMessage(string message, IBufferWriter<byte> output) => inner.WriteMessage(message, output);
    }

    /// <summary>
    /// The most bytes of one unterminated line a session holds when the framer raises: up to the
    /// limit plus one byte (it may be the CR of a CRLF) examined before the last read, plus that read.
    /// </summary>
    private static long OversizeLineBound(int limit, PipeProtocolOptions options)
        => limit + 1L + options.ReceiveBufferSize;

    /// <summary>A line of printable ASCII (no quote, backslash or newline) in a long pattern, so truncation or corruption shows.</summary>
    private static string PatternLine(int length) => string.Create(length, 0, static (span, _) =>
    {
        const string Alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:";
        for (var i = 0; i < span.Length; i++)
        {
            span[i] = Alphabet[(int)((uint)(i * 2654435761L >> 7) % Alphabet.Length)];
        }
    });

    private static async Task<(int Count, Exception? Error)> DrainAsync(QmpEventListener listener)
    {
        var count = 0;
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        try
        {
            await foreach (var _ in listener.ReadAllAsync(bound.Token))
            {
                count++;
            }

            return (count, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return (count, ex);
        }
    }

    private static void Report(FloodResult flood, FrameTooLargeException error, PeerEnd end, HostileMemorySampler memory, long bound, long liveGrowthWhenEnded)
        => TestContext.Progress.WriteLine(
            $"{TestContext.CurrentContext.Test.Name}:{Environment.NewLine}"
            + $"  fed {flood.BytesWritten:N0} bytes ({HostileMemorySampler.Mib(flood.BytesWritten)}) in {flood.Elapsed.TotalMilliseconds:F0} ms before the send failed with {flood.Error?.ToString() ?? "nothing"}; "
            + $"the peer's read side saw {end.How}{Environment.NewLine}"
            + $"  limit {error.MaximumLength:N0}, observed {error.ObservedLength:N0} bytes when raised, bound (limit + 1 + one read) {bound:N0}{Environment.NewLine}"
            + $"  live managed growth when the session ended {HostileMemorySampler.Mib(liveGrowthWhenEnded)}; over the whole run:{Environment.NewLine}"
            + $"  {memory.Describe()}");
}
