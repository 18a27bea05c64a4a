using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// How a session ends: <c>DisconnectAsync</c> (the seed's <c>disconnect()</c>: <c>_schedule_disconnect</c>
/// then <c>_wait_disconnect</c>), the teardown it waits for (<c>_bh_disconnect</c>: drain, stop the loops,
/// close the stream) and a session that ends by itself (a loop fails and schedules the disconnect).
/// </summary>
public class DisconnectTests
{
    private const int QueuedLines = 10_000;

    /// <summary>A send pipe far larger than anything these tests queue: every send is taken at once.</summary>
    private static readonly PipeProtocolOptions UnthrottledSends = new() { SendPauseThreshold = 64 * 1024 * 1024, SendResumeThreshold = 32 * 1024 * 1024 };

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    // ---------------------------------------------------------------------------------------
    // DisconnectAsync drains: every message queued before it reaches the peer, in order.
    // ---------------------------------------------------------------------------------------

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task DisconnectAsync_delivers_every_line_queued_before_it_in_order(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAsync(server, client, transport);

        for (var i = 0; i < QueuedLines; i++)
        {
            await client.SendLineAsync(Line(i)).Bounded();
        }

        await client.DisconnectAsync().Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        var received = await server.NextLinesAsync(QueuedLines);
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, QueuedLines).Select(Line)));
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
        Assert.That(server.Received.TryRead(out var extra), Is.False, $"unexpected extra line '{extra}'");
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task DisconnectAsync_right_after_queueing_without_waiting_delivers_every_line_in_order(TransportKind transport)
    {
        // Every SendLineAsync completes at once: most lines are not flushed yet when DisconnectAsync
        // starts, so the drain does the work.
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(UnthrottledSends, name: "client");
        await ConnectAsync(server, client, transport);

        QueueWithoutWaiting(client, QueuedLines, Line);
        await client.DisconnectAsync().Bounded();

        var received = await server.NextLinesAsync(QueuedLines);
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, QueuedLines).Select(Line)));
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task DisconnectAsync_delivers_every_queued_line_to_a_server_that_is_slow_to_read(TransportKind transport)
    {
        // The server stalls on its first line, so the client's drain has to wait for it: 10,000 lines
        // of 1 KB are far more than one 64 KiB read and the kernel buffers hold.
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var first = true;
        server.OnLine = async (_, _) =>
        {
            if (first)
            {
                first = false;
                await Task.Delay(300);
            }
        };
        await ConnectAsync(server, client, transport);
        var padding = new string('x', 1000);

        for (var i = 0; i < QueuedLines; i++)
        {
            await client.SendLineAsync(Line(i) + padding).Bounded();
        }

        await client.DisconnectAsync().Bounded();

        var received = await server.NextLinesAsync(QueuedLines);
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, QueuedLines).Select(i => Line(i) + padding)));
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task DisconnectAsync_keeps_reading_until_everything_is_sent_so_a_peer_that_echoes_every_line_receives_them_all(TransportKind transport)
    {
        // The server answers every line from its read loop. Were the client to stop reading before
        // its bytes were sent, the answers would back up, the server would stop reading, and the
        // rest could never leave: 20 MB queued at once is far more than the kernel buffers (which
        // grow to a few MB over TCP loopback) and the server's send pipe hold.
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(UnthrottledSends, name: "client");
        server.OnLine = (line, token) => server.SendLineAsync(line, token);
        await ConnectAsync(server, client, transport);
        var padding = new string('e', 1000);
        const int lines = 2 * QueuedLines;

        QueueWithoutWaiting(client, lines, i => Line(i) + padding);
        await client.DisconnectAsync().Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        var received = await server.NextLinesAsync(lines);
        Assert.That(received, Is.EqualTo(Enumerable.Range(0, lines).Select(i => Line(i) + padding)));
    }

    [TestCase(false, 0)]
    [TestCase(true, 0)]
    [TestCase(false, 500)]
    [TestCase(true, 500)]
    public async Task DisconnectAsync_delivers_every_queued_line_to_a_raw_socket_that_starts_reading_after_a_delay(bool unix, int delayMilliseconds)
    {
        await using var client = new LineProtocol(name: "client");
        using var peer = unix ? RawPeer.ListenUnix(_socketFiles) : RawPeer.ListenTcp();
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var socket = await peer.AcceptAsync();
        var padding = new string('y', 500);

        // 5 MB: more than the buffers hold, so until the peer starts reading the sends wait.
        var reader = Task.Run(async () =>
        {
            await Task.Delay(delayMilliseconds);
            var text = await RawPeer.ReadToEndAsync(socket);
            socket.Shutdown(SocketShutdown.Both);
            return text;
        });
        for (var i = 0; i < QueuedLines; i++)
        {
            await client.SendLineAsync(Line(i) + padding).Bounded();
        }

        await client.DisconnectAsync().Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        var text = await reader.Bounded();
        var expected = string.Concat(Enumerable.Range(0, QueuedLines).Select(i => Line(i) + padding + "\n"));
        Assert.That(text.Length, Is.EqualTo(expected.Length), "every byte queued before DisconnectAsync arrives");
        Assert.That(text, Is.EqualTo(expected));
    }

    // ---------------------------------------------------------------------------------------
    // DisconnectAsync is idempotent.
    // ---------------------------------------------------------------------------------------

    [Test]
    public async Task DisconnectAsync_twice_in_a_row_is_safe()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAsync(server, client, TransportKind.Tcp4);

        await client.DisconnectAsync().Bounded();
        await client.DisconnectAsync().Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task DisconnectAsync_from_Idle_passes_through_Disconnecting_back_to_Idle()
    {
        await using var protocol = new LineProtocol();
        var recorder = new RunstateRecorder(protocol);

        await protocol.DisconnectAsync().Bounded();

        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.States, Is.EqualTo(new[] { Runstate.Disconnecting, Runstate.Idle }));
        Assert.That(protocol.SessionEnded.Ran, Is.False, "there was no session to end");
    }

    [Test]
    public async Task Sixteen_concurrent_DisconnectAsync_calls_on_a_running_session_all_complete_and_leave_it_Idle()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAsync(server, client, TransportKind.Tcp4);
        for (var i = 0; i < 100; i++)
        {
            await client.SendLineAsync(Line(i)).Bounded();
        }

        var recorder = new RunstateRecorder(client);
        using var go = new ManualResetEventSlim();
        var calls = Enumerable.Range(0, 16).Select(_ => Task.Run(() =>
        {
            go.Wait();
            return client.DisconnectAsync();
        })).ToArray();
        go.Set();

        await Task.WhenAll(calls).Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        var transitions = recorder.States;
        Assert.That(transitions.Take(2), Is.EqualTo(new[] { Runstate.Disconnecting, Runstate.Idle }));
        Assert.That(transitions.Count % 2, Is.Zero, "only Disconnecting/Idle pairs");
        Assert.That(transitions.Where((_, index) => index % 2 == 0), Is.All.EqualTo(Runstate.Disconnecting));
        Assert.That(transitions.Where((_, index) => index % 2 == 1), Is.All.EqualTo(Runstate.Idle));
        Assert.That(await server.NextLinesAsync(100), Is.EqualTo(Enumerable.Range(0, 100).Select(Line)));
    }

    [Test]
    public async Task Every_concurrent_caller_of_one_disconnect_sees_its_root_cause_and_a_later_call_raises_nothing()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var handling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var rootCause = new InvalidOperationException("the handler failed while the disconnect waited for it");
        server.OnLine = async (_, _) =>
        {
            handling.TrySetResult();
            await release.Task; // deliberately ignores the teardown's cancellation
            throw rootCause;
        };
        await ConnectAsync(server, client, TransportKind.Tcp4);
        await client.SendLineAsync("stall").Bounded();
        await handling.Task.Bounded();

        // Sixteen callers join the same teardown, which waits for the stalled read loop.
        var calls = Enumerable.Range(0, 16).Select(_ => Task.Run(() => server.DisconnectAsync())).ToArray();
        await Task.Delay(100);
        Assert.That(calls.Any(call => call.IsCompleted), Is.False, "the teardown waits for the read loop");
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Disconnecting));

        release.SetResult();

        foreach (var call in calls)
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => call.Bounded());
            Assert.That(error, Is.SameAs(rootCause));
        }

        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(server.SessionEnded, Is.EqualTo((true, (Exception?)rootCause)));
        await server.DisconnectAsync().Bounded();
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task Every_concurrent_caller_of_a_draining_disconnect_sees_the_error_that_cut_the_drain_short()
    {
        var options = new PipeProtocolOptions { OutboundBatchBytes = 4096, SendPauseThreshold = 16 * 1024, SendResumeThreshold = 8 * 1024 };
        await using var client = new LineProtocol(options, name: "client");
        using var peer = RawPeer.ListenTcp(receiveBufferSize: 4096);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        var socket = await peer.AcceptAsync(); // never read
        var blocked = await FillUntilSendPendsAsync(client, new string('r', 4096));

        var calls = Enumerable.Range(0, 16).Select(_ => Task.Run(() => client.DisconnectAsync())).ToArray();
        await Assert.ThrowsAsync<StateException>(() => blocked.Bounded());
        await Task.Delay(100);
        Assert.That(calls.Any(call => call.IsCompleted), Is.False, "the drain waits for the peer to read");

        socket.LingerState = new LingerOption(true, 0);
        socket.Close(); // the peer resets instead of reading

        var errors = new List<Exception>();
        foreach (var call in calls)
        {
            errors.Add((await Assert.CatchAsync<Exception>(() => call.Bounded(), "the reset is the session's root cause"))!);
        }

        Assert.That(errors[0], Is.Not.InstanceOf<OperationCanceledException>());
        Assert.That(errors, Is.All.SameAs(errors[0]), "every concurrent caller sees the same root cause");
        Assert.That(client.SessionEnded.RootCause, Is.SameAs(errors[0]));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        await client.DisconnectAsync().Bounded();
    }

    // ---------------------------------------------------------------------------------------
    // The peer closes: the session ends by itself and waits in Disconnecting.
    // ---------------------------------------------------------------------------------------

    [Test]
    public async Task When_the_peer_closes_the_session_moves_to_Disconnecting_by_itself_and_stays_there()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAsync(server, client, TransportKind.Tcp4);
        var change = client.WaitForRunstateChangeAsync();

        await server.DisconnectAsync().Bounded();

        Assert.That(await change.Bounded(), Is.EqualTo(Runstate.Disconnecting));
        await SessionSpecKit.WaitUntilAsync(() => client.SessionEnded.Ran, "the client's session has ended");
        Assert.That(client.SessionEnded.RootCause, Is.TypeOf<EndOfStreamException>());
        await Task.Delay(50);
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Disconnecting), "only DisconnectAsync returns it to Idle");
    }

    [Test]
    public async Task When_the_peer_closes_WatchRunstateAsync_sees_Disconnecting_and_then_Idle_after_DisconnectAsync()
    {
        await using var client = new LineProtocol(name: "client");
        using var peer = RawPeer.ListenTcp();
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var cts = new CancellationTokenSource(TestTimeouts.Default);
        await using var watch = client.WatchRunstateAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        var first = watch.MoveNextAsync();

        using (var socket = await peer.AcceptAsync())
        {
            socket.Shutdown(SocketShutdown.Both);
        }

        Assert.That(await first.Bounded(), Is.True);
        Assert.That(watch.Current, Is.EqualTo(Runstate.Disconnecting));
        var second = watch.MoveNextAsync();
        await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());
        Assert.That(await second.Bounded(), Is.True);
        Assert.That(watch.Current, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task After_the_peer_closed_SendLineAsync_raises_StateException()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAndLetServerCloseAsync(server, client);

        var error = await Assert.ThrowsAsync<StateException>(() => client.SendLineAsync("too late").Bounded());

        Assert.That(error!.State, Is.EqualTo(Runstate.Disconnecting));
        Assert.That(error.Required, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task After_the_peer_closed_DisconnectAsync_raises_EndOfStreamException_once_and_returns_to_Idle()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAndLetServerCloseAsync(server, client);

        var error = await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(client.SessionEnded.Ran, Is.True);
        Assert.That(client.SessionEnded.RootCause, Is.SameAs(error), "OnSessionEndedAsync saw the same root cause");
        await client.DisconnectAsync().Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task After_the_peer_closed_and_DisconnectAsync_the_same_object_connects_again_and_works()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAndLetServerCloseAsync(server, client);
        await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());

        await ConnectAsync(server, client, TransportKind.Tcp4);
        await client.SendLineAsync("again").Bounded();
        Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo("again"));
        await server.SendLineAsync("welcome back").Bounded();
        Assert.That(await client.NextLineAsync().Bounded(), Is.EqualTo("welcome back"));

        await client.DisconnectAsync().Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
    }

    [Test]
    public async Task A_peer_that_disconnects_in_the_middle_of_a_line_makes_DisconnectAsync_raise_IncompleteFrameException()
    {
        await using var client = new LineProtocol(name: "client");
        using var peer = RawPeer.ListenTcp();
        await client.ConnectAsync(peer.EndPoint).Bounded();
        var change = client.WaitForRunstateChangeAsync();

        using (var socket = await peer.AcceptAsync())
        {
            await socket.SendAsync("partial"u8.ToArray()).Bounded();
            socket.Shutdown(SocketShutdown.Both);
        }

        Assert.That(await change.Bounded(), Is.EqualTo(Runstate.Disconnecting));
        var error = await Assert.ThrowsAsync<IncompleteFrameException>(() => client.DisconnectAsync().Bounded());
        Assert.That(error!.BytesReceived, Is.EqualTo(7));
        Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(client.Received.TryRead(out _), Is.False, "the partial line is not delivered");
    }

    [Test]
    public async Task An_oversize_line_from_the_peer_ends_the_session_and_DisconnectAsync_raises_FrameTooLargeException()
    {
        await using var client = new LineProtocol(name: "client", framer: new Utf8LineFramer(maximumLineLength: 1024));
        using var peer = RawPeer.ListenTcp();
        await client.ConnectAsync(peer.EndPoint).Bounded();
        var change = client.WaitForRunstateChangeAsync();
        using var socket = await peer.AcceptAsync();

        await socket.SendAsync(Encoding.ASCII.GetBytes(new string('z', 5000))).Bounded();

        Assert.That(await change.Bounded(), Is.EqualTo(Runstate.Disconnecting), "the session ends without the peer closing");
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => client.DisconnectAsync().Bounded());
        Assert.That(error!.MaximumLength, Is.EqualTo(1024));
        Assert.That(error.ObservedLength, Is.GreaterThan(1024));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task An_exception_from_OnMessageAsync_ends_the_session_and_is_the_very_exception_DisconnectAsync_raises()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var boom = new InvalidDataException("cannot handle line 2");
        var seen = new List<string>();
        server.OnLine = (line, _) =>
        {
            lock (seen)
            {
                seen.Add(line);
            }

            return line == "2" ? ValueTask.FromException(boom) : ValueTask.CompletedTask;
        };
        await ConnectAsync(server, client, TransportKind.Tcp4);
        var change = server.WaitForRunstateChangeAsync();

        await client.SendLineAsync("1").Bounded();
        await client.SendLineAsync("2").Bounded();
        await client.SendLineAsync("3").Bounded();

        Assert.That(await change.Bounded(), Is.EqualTo(Runstate.Disconnecting));
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => server.DisconnectAsync().Bounded());
        Assert.That(error, Is.SameAs(boom));
        Assert.That(server.SessionEnded.RootCause, Is.SameAs(boom));
        lock (seen)
        {
            Assert.That(seen, Is.EqualTo(new[] { "1", "2" }), "no line after the failing one is handled");
        }

        Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo("1"));
        Assert.That(server.Received.TryRead(out _), Is.False);
        await server.DisconnectAsync().Bounded();
    }

    [Test]
    public async Task A_line_the_framer_cannot_write_is_refused_to_its_sender_with_ArgumentException_and_the_session_goes_on()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        await ConnectAsync(server, client, TransportKind.Tcp4);

        await client.SendLineAsync("fine").Bounded();
        await Assert.ThrowsAsync<ArgumentException>(() => client.SendLineAsync("not\nfine").AsTask());
        await client.SendLineAsync("also fine").Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        Assert.That(await server.NextLinesAsync(2), Is.EqualTo(new[] { "fine", "also fine" }), "nothing of the refused line is sent");
        await client.DisconnectAsync().Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(client.SessionEnded, Is.EqualTo((true, (Exception?)null)), "a refused message is not a root cause");
    }

    [Test]
    public async Task DisconnectAsync_cancels_a_handler_that_waits_on_the_session_token_and_raises_nothing()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.OnLine = async (_, token) =>
        {
            waiting.TrySetResult();
            await Task.Delay(Timeout.Infinite, token);
        };
        await ConnectAsync(server, client, TransportKind.Tcp4);
        await client.SendLineAsync("wait forever").Bounded();
        await waiting.Task.Bounded();

        await server.DisconnectAsync().Bounded();

        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(server.SessionEnded, Is.EqualTo((true, (Exception?)null)), "a clean disconnect has no root cause");
    }

    [Test]
    public async Task DisconnectAsync_awaited_from_OnMessageAsync_with_the_session_token_does_not_deadlock()
    {
        // The seed's _bh_disconnect cancels the reader task, which interrupts a disconnect() awaited
        // inside it; here the session's token plays that part. Not disposed with 'await using': if
        // this deadlocks, disposing would hang too.
        var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var handlerDone = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        server.OnLine = async (_, token) =>
        {
            try
            {
                await server.DisconnectAsync(token);
                handlerDone.TrySetResult(null);
            }
            catch (Exception ex)
            {
                handlerDone.TrySetResult(ex);
                throw;
            }
        };
        await ConnectAsync(server, client, TransportKind.Tcp4);

        await client.SendLineAsync("quit").Bounded();

        var handlerError = await handlerDone.Task.Bounded();
        Assert.That(handlerError, Is.Null.Or.InstanceOf<OperationCanceledException>(), "the teardown interrupts the handler's own wait at most");
        await server.DisconnectAsync().Bounded();
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
        await server.DisposeAsync();
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task Cancelling_DisconnectAsync_while_a_stalled_server_blocks_the_drain_finishes_promptly_with_OperationCanceledException_and_Idle(TransportKind transport)
    {
        var options = new PipeProtocolOptions { OutboundBatchBytes = 4096, SendPauseThreshold = 16 * 1024, SendResumeThreshold = 8 * 1024 };
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(options, name: "client");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.OnLine = async (_, _) => await release.Task; // stops reading, and ignores the teardown
        try
        {
            await ConnectAsync(server, client, transport);
            var blocked = await FillUntilSendPendsAsync(client, new string('s', 4096));

            using var cts = new CancellationTokenSource();
            var disconnect = client.DisconnectAsync(cts.Token);
            await Task.Delay(200);
            Assert.That(disconnect.IsCompleted, Is.False, "the drain waits for the server to read");

            await cts.CancelAsync();
            await Assert.CatchAsync<OperationCanceledException>(() => disconnect.WaitAsync(TimeSpan.FromSeconds(2)));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
            await Assert.ThrowsAsync<StateException>(() => blocked.Bounded());
        }
        finally
        {
            release.TrySetResult();
        }
    }

    [Test]
    public async Task Cancelling_DisconnectAsync_while_the_drain_is_blocked_finishes_promptly_with_OperationCanceledException_and_Idle()
    {
        var options = new PipeProtocolOptions
        {
            OutboundBatchBytes = 4096,
            SendPauseThreshold = 16 * 1024,
            SendResumeThreshold = 8 * 1024,
        };
        await using var client = new LineProtocol(options, name: "client");
        using var peer = RawPeer.ListenTcp(receiveBufferSize: 4096);
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var socket = await peer.AcceptAsync(); // never read
        var blocked = await FillUntilSendPendsAsync(client, new string('q', 4096));

        using var cts = new CancellationTokenSource();
        var disconnect = client.DisconnectAsync(cts.Token);
        await Task.Delay(300);
        Assert.That(disconnect.IsCompleted, Is.False, "the drain waits for the peer to read");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Disconnecting));

        var started = System.Diagnostics.Stopwatch.StartNew();
        await cts.CancelAsync();
        await Assert.CatchAsync<OperationCanceledException>(() => disconnect.WaitAsync(TimeSpan.FromSeconds(2)));

        Assert.That(started.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        await Assert.ThrowsAsync<StateException>(() => blocked.Bounded());
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    private static string Line(int i) => $"line {i:D5}";

    /// <summary>Queues <paramref name="count"/> lines, each of which must be taken at once (no flush waits for the socket).</summary>
    private static void QueueWithoutWaiting(LineProtocol client, int count, Func<int, string> line)
    {
        for (var i = 0; i < count; i++)
        {
            var send = client.SendLineAsync(line(i));
            Assert.That(send.IsCompletedSuccessfully, Is.True, "queued without waiting");
        }
    }

    private Task ConnectAsync(LineProtocol server, LineProtocol client, TransportKind transport)
        => SessionConnector.ConnectAsync(server, client, transport, _socketFiles);

    /// <summary>Connects over TCP, then the server disconnects; returns once the client's session has ended by itself.</summary>
    private async Task ConnectAndLetServerCloseAsync(LineProtocol server, LineProtocol client)
    {
        await ConnectAsync(server, client, TransportKind.Tcp4);
        var change = client.WaitForRunstateChangeAsync();
        await server.DisconnectAsync().Bounded();
        Assert.That(await change.Bounded(), Is.EqualTo(Runstate.Disconnecting));
    }

    /// <summary>Sends copies of <paramref name="line"/> until one send stays pending; returns that pending send.</summary>
    private static async Task<Task> FillUntilSendPendsAsync(LineProtocol client, string line)
    {
        for (var i = 0; i < 100_000; i++)
        {
            var send = client.SendLineAsync(line).AsTask();
            if (await Task.WhenAny(send, Task.Delay(200)) != send)
            {
                return send;
            }

            await send;
        }

        Assert.Fail("SendLineAsync never waited although the peer does not read.");
        return Task.CompletedTask;
    }
}
