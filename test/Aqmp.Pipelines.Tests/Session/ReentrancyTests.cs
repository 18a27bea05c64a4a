using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// Calls a session makes into itself (from its handshake, its read loop, its end hook), calls from
/// other threads racing with them, and the independence of one session from the teardown of the
/// one before. Every await is bounded, so that a regression fails fast instead of hanging.
/// </summary>
public class ReentrancyTests : SessionSpecBase
{
    /// <summary>How long a hook waits for a call it makes into its own session before calling it a hang.</summary>
    private static readonly TimeSpan HookBound = TimeSpan.FromSeconds(5);

    /// <summary>What "at once" and "shortly" mean here: generous for a loaded machine, far below a hang.</summary>
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(2);

    public enum Attempt
    {
        /// <summary>ConnectAsync to a raw listening socket.</summary>
        Connect,

        /// <summary>StartServerAsync then AcceptAsync of a raw client socket.</summary>
        Accept,
    }

    public enum Ending
    {
        /// <summary>The peer closes its end: the session ends by itself with EndOfStreamException.</summary>
        PeerClosed,

        /// <summary>OnMessageAsync throws: the session ends by itself with that exception.</summary>
        HandlerFailed,

        /// <summary>The application calls DisconnectAsync.</summary>
        LocalDisconnect,
    }

    public enum SelfTimeout
    {
        /// <summary>The handshake awaits Task.Delay with a token of its own that fires after 100 ms.</summary>
        Delay,

        /// <summary>The handshake's ReceiveAsync is given a token of its own that fires after 100 ms.</summary>
        Receive,
    }

    // -------------------------------------------------------------------------------------------
    // 1. DisconnectAsync / DisposeAsync awaited from inside EstablishSessionAsync.
    // -------------------------------------------------------------------------------------------

    [TestCase(Attempt.Connect)]
    [TestCase(Attempt.Accept)]
    public async Task DisconnectAsync_awaited_from_EstablishSessionAsync_raises_OperationCanceledException_and_so_does_the_attempt_which_ends_Idle(Attempt kind)
    {
        var protocol = Own(new HookProtocol(name: "self-cancelling"));
        var seen = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.Handshake = async (p, handshake, _) =>
        {
            try
            {
                await p.DisconnectAsync().WaitAsync(HookBound);
                seen.TrySetResult(null);
            }
            catch (Exception ex)
            {
                seen.TrySetResult(ex);
                throw;
            }
        };

        var (attempt, peer, listener) = await StartAttemptAsync(protocol, kind);
        using (peer)
        using (listener)
        {
            await Assert.CatchAsync<OperationCanceledException>(() => attempt.Bounded(), "the attempt is cancelled");

            using (Assert.EnterMultipleScope())
            {
                Assert.That(await seen.Task.Bounded(), Is.InstanceOf<OperationCanceledException>(), "DisconnectAsync raised inside the handshake");
                Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
                Assert.That(protocol.EndedRootCauses, Is.Empty, "a session that never ran does not end");
            }

            await AssertPeerSeesTheEndAsync(peer);
        }
    }

    [TestCase(Attempt.Connect)]
    [TestCase(Attempt.Accept)]
    public async Task DisposeAsync_awaited_from_EstablishSessionAsync_returns_the_attempt_raises_OperationCanceledException_and_the_object_ends_Idle_and_disposed(Attempt kind)
    {
        // DisposeAsync logs rather than raises (its documentation): it returns, and the attempt,
        // cancelled by the disconnect it made, still raises OperationCanceledException to its caller.
        var protocol = Own(new HookProtocol(name: "self-disposing"));
        var seen = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.Handshake = async (p, handshake, _) =>
        {
            try
            {
                await p.DisposeAsync().AsTask().WaitAsync(HookBound);
                seen.TrySetResult(null);
            }
            catch (Exception ex)
            {
                seen.TrySetResult(ex);
                throw;
            }
        };

        var (attempt, peer, listener) = await StartAttemptAsync(protocol, kind);
        using (peer)
        using (listener)
        {
            await Assert.CatchAsync<OperationCanceledException>(() => attempt.Bounded(), "the attempt is cancelled");

            using (Assert.EnterMultipleScope())
            {
                Assert.That(await seen.Task.Bounded(), Is.Null, "DisposeAsync returns from inside the handshake");
                Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
            }

            await AssertPeerSeesTheEndAsync(peer);
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.OpenAsync(SessionSpecKit.CrossedPipes().Left).Bounded());
        }
    }

    // -------------------------------------------------------------------------------------------
    // 2. DisconnectAsync / DisposeAsync awaited from inside OnSessionEndedAsync.
    // -------------------------------------------------------------------------------------------

    [TestCase(Ending.PeerClosed)]
    [TestCase(Ending.HandlerFailed)]
    [TestCase(Ending.LocalDisconnect)]
    public async Task DisconnectAsync_awaited_from_OnSessionEndedAsync_returns_at_once_and_the_object_reaches_Idle_by_itself(Ending ending)
    {
        var protocol = Own(new HookProtocol(name: "ending"));
        var outcome = CallFromEndHook(protocol, p => p.DisconnectAsync());

        await EndSessionAndCheckEndHookCallAsync(protocol, ending, outcome);
    }

    [TestCase(Ending.PeerClosed)]
    [TestCase(Ending.HandlerFailed)]
    [TestCase(Ending.LocalDisconnect)]
    public async Task DisposeAsync_awaited_from_OnSessionEndedAsync_returns_at_once_and_the_object_reaches_Idle_by_itself_disposed(Ending ending)
    {
        var protocol = Own(new HookProtocol(name: "ending"));
        var outcome = CallFromEndHook(protocol, p => p.DisposeAsync().AsTask());

        await EndSessionAndCheckEndHookCallAsync(protocol, ending, outcome);

        await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.OpenAsync(SessionSpecKit.CrossedPipes().Left).Bounded());
    }

    // -------------------------------------------------------------------------------------------
    // 3. DisposeAsync / DisconnectAsync awaited from inside OnMessageAsync.
    // -------------------------------------------------------------------------------------------

    [Test]
    public async Task DisposeAsync_awaited_from_OnMessageAsync_returns_and_the_object_reaches_Idle_by_itself_shortly_after_the_hook_returns()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new HookProtocol(name: "disposing"));
        var outcome = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var hookReturned = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.OnLine = async (p, line, context, _) =>
        {
            if (line != "quit")
            {
                return;
            }

            try
            {
                await p.SendLineAsync("bye");
                await p.DisposeAsync().AsTask().WaitAsync(HookBound);
                outcome.TrySetResult(null);
            }
            catch (Exception ex)
            {
                outcome.TrySetResult(ex);
            }

            hookReturned.TrySetResult(Stopwatch.GetTimestamp());
        };
        await protocol.OpenAsync(mine).Bounded();

        await SessionSpecKit.WriteAsync(peer.Output, "quit\n");

        Assert.That(await outcome.Task.Bounded(), Is.Null, "DisposeAsync returns inside OnMessageAsync");
        var returnedAt = await hookReturned.Task.Bounded();
        await protocol.UntilRunstateAsync(Runstate.Idle).WaitAsync(Promptly);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Stopwatch.GetElapsedTime(returnedAt), Is.LessThan(Promptly));
            Assert.That(protocol.EndedRootCauses, Is.EqualTo(new Exception?[] { null }), "a clean end: no root cause");
            Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input), Is.EqualTo("bye\n"), "the reply queued before DisposeAsync is drained");
        }

        await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.OpenAsync(SessionSpecKit.CrossedPipes().Left).Bounded());
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task DisconnectAsync_awaited_from_OnMessageAsync_raises_OperationCanceledException_and_the_object_reaches_Idle_by_itself(bool letItPropagate)
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new HookProtocol(name: "hanging-up"));
        var outcome = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var hookReturned = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.OnLine = async (p, line, context, _) =>
        {
            if (line != "quit")
            {
                return;
            }

            try
            {
                await p.SendLineAsync("bye");
                await p.DisconnectAsync().WaitAsync(HookBound);
                outcome.TrySetResult(null);
            }
            catch (Exception ex)
            {
                outcome.TrySetResult(ex);
                if (letItPropagate)
                {
                    hookReturned.TrySetResult(Stopwatch.GetTimestamp());
                    throw;
                }
            }

            hookReturned.TrySetResult(Stopwatch.GetTimestamp());
        };
        await protocol.OpenAsync(mine).Bounded();

        await SessionSpecKit.WriteAsync(peer.Output, "quit\n");

        Assert.That(await outcome.Task.Bounded(), Is.InstanceOf<OperationCanceledException>(), "DisconnectAsync raises inside OnMessageAsync");
        var returnedAt = await hookReturned.Task.Bounded();
        await protocol.UntilRunstateAsync(Runstate.Idle).WaitAsync(Promptly);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Stopwatch.GetElapsedTime(returnedAt), Is.LessThan(Promptly));
            Assert.That(protocol.EndedRootCauses, Is.EqualTo(new Exception?[] { null }), "the cancellation is not a root cause");
            Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input), Is.EqualTo("bye\n"), "the reply queued before DisconnectAsync is drained");
        }

        Assert.That(await Capture(protocol.DisconnectAsync()), Is.Null, "no error is left over for a later DisconnectAsync");
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
    }

    // -------------------------------------------------------------------------------------------
    // 4. OpenAsync with an already-cancelled token owns, and closes, what it was given.
    // -------------------------------------------------------------------------------------------

    [Test]
    public async Task OpenAsync_of_a_socket_with_an_already_cancelled_token_raises_OperationCanceledException_ends_Idle_and_closes_the_socket()
    {
        var (mine, peer) = await ConnectedSocketsAsync();
        using (mine)
        using (peer)
        {
            var protocol = Own(new HookProtocol());

            await Assert.CatchAsync<OperationCanceledException>(() => protocol.OpenAsync(mine, new CancellationToken(true)).Bounded());

            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
            await AssertPeerSeesTheEndAsync(peer);
        }
    }

    [Test]
    public async Task OpenAsync_of_a_stream_with_an_already_cancelled_token_raises_OperationCanceledException_ends_Idle_and_closes_the_stream()
    {
        var (mine, peer) = await ConnectedSocketsAsync();
        using (peer)
        {
            var stream = new NetworkStream(mine, ownsSocket: true);
            var protocol = Own(new HookProtocol());

            await Assert.CatchAsync<OperationCanceledException>(() => protocol.OpenAsync(stream, new CancellationToken(true)).Bounded());

            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
            await AssertPeerSeesTheEndAsync(peer);
        }
    }

    [Test]
    public async Task OpenAsync_of_a_TransportConnection_with_an_already_cancelled_token_raises_OperationCanceledException_ends_Idle_and_closes_the_connection()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var connection = new RecordingConnection(mine);
        var protocol = Own(new HookProtocol());

        await Assert.CatchAsync<OperationCanceledException>(() => protocol.OpenAsync(connection, new CancellationToken(true)).Bounded());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(connection.AbortCalls + connection.CloseCalls, Is.GreaterThanOrEqualTo(1), "the connection was released (Abort or CloseAsync)");
            Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input), Is.Empty, "the peer sees the end of the stream");
        }
    }

    [Test]
    public async Task OpenAsync_of_a_pipe_with_an_already_cancelled_token_raises_OperationCanceledException_ends_Idle_and_completes_the_pipe()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new HookProtocol());

        await Assert.CatchAsync<OperationCanceledException>(() => protocol.OpenAsync(mine, new CancellationToken(true)).Bounded());

        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input), Is.Empty, "the peer sees the end of the stream");
    }

    // -------------------------------------------------------------------------------------------
    // 5. Sends from other threads during a handshake.
    // -------------------------------------------------------------------------------------------

    [Test]
    public async Task During_a_handshake_waiting_for_the_peer_SendAsync_from_another_thread_raises_StateException_Connecting_and_writes_nothing_while_the_handshake_sends_still_work()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var protocol = Own(new HookProtocol(name: "handshaking"));
        protocol.Handshake = async (p, handshake, token) =>
        {
            await handshake.SendAsync("hello", token);
            var reply = await handshake.ReceiveAsync(token);
            await handshake.SendAsync($"ack {reply}", token);
        };

        var connect = protocol.ConnectAsync(endPoint);
        using var peer = await listener.AcceptAsync().Bounded();
        Assert.That(await SessionSpecKit.ReadLineAsync(peer), Is.EqualTo("hello"));
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Connecting), "the handshake waits for the peer");

        var intruders = Enumerable.Range(0, 4).Select(i => Task.Run(async () => await protocol.SendLineAsync($"intruder {i}"))).ToArray();
        foreach (var intruder in intruders)
        {
            var error = await Assert.ThrowsAsync<StateException>(() => intruder.Bounded());
            Assert.That(error!.State, Is.EqualTo(Runstate.Connecting));
        }

        Assert.That(connect.IsCompleted, Is.False, "the rejected sends did not disturb the handshake");
        await peer.SendAsync(Encoding.UTF8.GetBytes("world\n"), SocketFlags.None).Bounded();
        Assert.That(await SessionSpecKit.ReadLineAsync(peer), Is.EqualTo("ack world"), "the handshake's own send, and nothing before it");
        await connect.Bounded();
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Running));

        await Task.Run(async () => await protocol.SendLineAsync("after")).Bounded();
        await protocol.DisconnectAsync().Bounded();

        Assert.That(await SessionSpecKit.ReadToEndAsync(peer), Is.EqualTo("after\n"), "no intruder line was ever written");
    }

    // -------------------------------------------------------------------------------------------
    // 6. A cancelled DisconnectAsync while OnMessageAsync ignores its token.
    // -------------------------------------------------------------------------------------------

    [Test]
    public async Task DisconnectAsync_cancelled_while_OnMessageAsync_ignores_its_token_raises_OperationCanceledException_promptly_while_Disconnecting_and_Idle_follows_when_the_hook_returns()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new HookProtocol(name: "stuck"));
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.OnLine = async (_, _, context, _) =>
        {
            entered.TrySetResult();
            await release.Task; // ignores its token
        };

        try
        {
            await protocol.OpenAsync(mine).Bounded();
            await SessionSpecKit.WriteAsync(peer.Output, "block\n");
            await entered.Task.Bounded();

            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
            var started = Stopwatch.StartNew();
            await Assert.CatchAsync<OperationCanceledException>(() => protocol.DisconnectAsync(cts.Token).WaitAsync(TimeSpan.FromSeconds(5)));

            using (Assert.EnterMultipleScope())
            {
                Assert.That(started.Elapsed, Is.LessThan(TimeSpan.FromSeconds(4)), "raised within a few seconds of the cancellation");
                Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Disconnecting), "the hook still holds the teardown up");
            }

            release.TrySetResult();
            await protocol.UntilRunstateAsync(Runstate.Idle).WaitAsync(Promptly);
            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        }
        finally
        {
            release.TrySetResult();
        }
    }

    // -------------------------------------------------------------------------------------------
    // 7. An echo server hanging up while the client floods it.
    // -------------------------------------------------------------------------------------------

    [TestCase(false)]
    [TestCase(true)]
    public async Task An_echo_server_replying_with_SendAsync_to_a_flooding_client_hangs_up_locally_without_raising(bool overTcp)
    {
        var rounds = overTcp ? 3 : 6;
        for (var round = 0; round < rounds; round++)
        {
            var serverOptions = SessionSpecKit.Quick with { SendPauseThreshold = 16 * 1024, SendResumeThreshold = 8 * 1024, OutboundBatchBytes = 4096 };
            var server = Own(new HookProtocol(serverOptions, name: "echo"));
            var client = new HookProtocol(name: "flooder"); // disposed below with a short bound: see the end of the round
            server.OnLine = (_, line, context, token) => context.SendAsync(line, token);
            var echoes = 0;
            client.OnLine = (_, _, context, _) =>
            {
                Interlocked.Increment(ref echoes);
                return ValueTask.CompletedTask;
            };

            try
            {
                await ConnectPairAsync(server, client, overTcp);
                var flood = Task.Run(async () =>
                {
                    for (var i = 0; ; i++)
                    {
                        try
                        {
                            await client.SendLineAsync($"flood {i}").AsTask().WaitAsync(TestTimeouts.Default);
                        }
                        catch (StateException)
                        {
                            return i;
                        }
                    }
                });

                await SessionSpecKit.WaitUntilAsync(() => Volatile.Read(ref echoes) >= 200 || flood.IsCompleted, "the echoes flow");
                Assert.That(flood.IsCompleted, Is.False, $"round {round}: the flood is still under way");

                var error = await Capture(server.DisconnectAsync());

                using (Assert.EnterMultipleScope())
                {
                    Assert.That(error, Is.Null, $"round {round}: a reply that can no longer be sent must not become the root cause");
                    Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
                    Assert.That(server.EndedRootCauses, Is.EqualTo(new Exception?[] { null }), $"round {round}: a clean end");
                }

                Assert.That(await flood.Bounded(), Is.GreaterThan(0), "the flood ends with StateException once the session ended");

                // What ended the client's session (EOF, a reset) is not under test here, but it must end.
                var clientEnd = await Capture(client.DisconnectAsync().WaitAsync(Promptly));
                Assert.That(clientEnd, Is.Not.InstanceOf<TimeoutException>(), $"round {round}: the flooding client's own DisconnectAsync completes (runstate {client.Runstate})");
                Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}: the flooding client");
            }
            finally
            {
                await Capture(client.DisposeAsync().AsTask().WaitAsync(Promptly));
            }
        }
    }

    [Test]
    public async Task A_session_whose_peer_resets_while_the_write_loop_is_busy_still_reaches_Idle_on_DisconnectAsync()
    {
        // Found by the echo test above: the socket transport's own send loop completes the output
        // writer when the peer resets, while a sender may be writing to it. Whatever
        // that does to the pipe, the teardown must finish: DisconnectAsync returns (raising the root
        // cause) and the object is Idle. Short lines keep the senders framing (GetSpan/Advance)
        // most of the time; each round takes a few milliseconds, and the race is hit in a few of them.
        var payload = new string('r', 20);
        for (var round = 0; round < 250; round++)
        {
            using var listener = SessionSpecKit.ListenRaw(out var endPoint);
            var client = new HookProtocol(name: "reset"); // disposed below with a short bound
            try
            {
                var connect = client.ConnectAsync(endPoint);
                using var peer = await listener.AcceptAsync().Bounded();
                await connect.Bounded();
                var flood = Task.Run(async () =>
                {
                    while (true)
                    {
                        try
                        {
                            await client.SendLineAsync(payload).AsTask().WaitAsync(TestTimeouts.Default);
                        }
                        catch (StateException)
                        {
                            return;
                        }
                    }
                });

                // Read while the flood flows, so that the senders are framing rather than waiting; then reset.
                var buffer = new byte[64 * 1024];
                for (long received = 0; received < 256 * 1024;)
                {
                    received += await peer.ReceiveAsync(buffer, SocketFlags.None).Bounded();
                }

                peer.LingerState = new LingerOption(true, 0);
                peer.Close();

                await client.UntilRunstateAsync(Runstate.Disconnecting);
                await flood.Bounded();
                var error = await Capture(client.DisconnectAsync().WaitAsync(Promptly));
                using (Assert.EnterMultipleScope())
                {
                    Assert.That(error, Is.Not.InstanceOf<TimeoutException>(), $"round {round}: DisconnectAsync after the reset returns (runstate {client.Runstate})");
                    Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
                }
            }
            finally
            {
                await Capture(client.DisposeAsync().AsTask().WaitAsync(Promptly));
            }
        }
    }

    // -------------------------------------------------------------------------------------------
    // 8. A handshake that times out on its own is a failed handshake, not a cancellation.
    // -------------------------------------------------------------------------------------------

    [TestCase(SelfTimeout.Delay, false)]
    [TestCase(SelfTimeout.Receive, false)]
    [TestCase(SelfTimeout.Delay, true)]
    public async Task A_handshake_that_times_out_on_its_own_fails_with_ConnectException_Failed_to_establish_session_wrapping_the_OperationCanceledException(SelfTimeout how, bool overTcp)
    {
        var protocol = Own(new HookProtocol(name: "impatient"));
        var transitions = new ConcurrentQueue<(Runstate, Runstate)>();
        protocol.RunstateChanged += (_, e) => transitions.Enqueue((e.Previous, e.Current));
        protocol.Handshake = async (p, handshake, _) =>
        {
            using var own = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
            if (how == SelfTimeout.Delay)
            {
                await Task.Delay(Timeout.Infinite, own.Token);
            }
            else
            {
                await handshake.ReceiveAsync(own.Token);
            }
        };

        using var callerToken = new CancellationTokenSource();
        ConnectException? error;
        if (overTcp)
        {
            using var listener = SessionSpecKit.ListenRaw(out var endPoint);
            var connect = protocol.ConnectAsync(endPoint, cancellationToken: callerToken.Token);
            using var peer = await listener.AcceptAsync().Bounded();
            error = await Assert.ThrowsAsync<ConnectException>(() => connect.Bounded());
            await AssertPeerSeesTheEndAsync(peer);
        }
        else
        {
            var (mine, peer) = SessionSpecKit.CrossedPipes();
            error = await Assert.ThrowsAsync<ConnectException>(() => protocol.OpenAsync(mine, callerToken.Token).Bounded());
            Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input), Is.Empty, "the pipe was completed");
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(error!.ErrorMessage, Is.EqualTo(ConnectException.SessionPhase));
            Assert.That(error.Message, Does.StartWith("Failed to establish session"));
            Assert.That(error.InnerException, Is.InstanceOf<OperationCanceledException>());
            Assert.That(callerToken.IsCancellationRequested, Is.False);
            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(transitions, Is.EqualTo(SessionSpecKit.RolledBack));
        }
    }

    // -------------------------------------------------------------------------------------------
    // 9. A throwing RunstateChanged handler does not starve the others.
    // -------------------------------------------------------------------------------------------

    [Test]
    public async Task When_the_second_of_three_RunstateChanged_handlers_throws_the_first_and_third_still_see_every_transition()
    {
        var protocol = Own(new HookProtocol());
        var first = new ConcurrentQueue<(Runstate, Runstate)>();
        var second = new ConcurrentQueue<(Runstate, Runstate)>();
        var third = new ConcurrentQueue<(Runstate, Runstate)>();
        protocol.RunstateChanged += (_, e) => first.Enqueue((e.Previous, e.Current));
        protocol.RunstateChanged += (_, e) =>
        {
            second.Enqueue((e.Previous, e.Current));
            throw new InvalidOperationException("a faulty handler");
        };
        protocol.RunstateChanged += (_, e) => third.Enqueue((e.Previous, e.Current));

        var (mine, peer) = SessionSpecKit.CrossedPipes();
        await protocol.OpenAsync(mine).Bounded();
        await protocol.SendLineAsync("still works").Bounded();
        await protocol.DisconnectAsync().Bounded();
        await Assert.CatchAsync<OperationCanceledException>(() => protocol.OpenAsync(SessionSpecKit.CrossedPipes().Left, new CancellationToken(true)).Bounded());

        var expected = new[]
        {
            (Runstate.Idle, Runstate.Connecting),
            (Runstate.Connecting, Runstate.Running),
            (Runstate.Running, Runstate.Disconnecting),
            (Runstate.Disconnecting, Runstate.Idle),
            (Runstate.Idle, Runstate.Connecting),
            (Runstate.Connecting, Runstate.Disconnecting),
            (Runstate.Disconnecting, Runstate.Idle),
        };
        using (Assert.EnterMultipleScope())
        {
            Assert.That(first, Is.EqualTo(expected), "first handler");
            Assert.That(second, Is.EqualTo(expected), "the throwing handler is still called every time");
            Assert.That(third, Is.EqualTo(expected), "third handler");
            Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input), Is.EqualTo("still works\n"));
        }
    }

    // -------------------------------------------------------------------------------------------
    // 10. A teardown never affects a later session.
    // -------------------------------------------------------------------------------------------

    [Test]
    public async Task The_error_that_ended_one_session_is_raised_once_and_never_by_the_next_session_over_fifty_quick_cycles()
    {
        var protocol = Own(new HookProtocol(name: "cycling"));
        protocol.OnLine = (_, line, context, _) => line.StartsWith("boom ", StringComparison.Ordinal)
            ? throw new RoundException(int.Parse(line.AsSpan(5), System.Globalization.CultureInfo.InvariantCulture))
            : ValueTask.CompletedTask;

        for (var round = 0; round < 50; round++)
        {
            // A session that ends by itself, with an error.
            var (mine, peer) = SessionSpecKit.CrossedPipes();
            await protocol.OpenAsync(mine).Bounded();
            if (round % 2 == 0)
            {
                await peer.Output.CompleteAsync().Bounded();
            }
            else
            {
                await SessionSpecKit.WriteAsync(peer.Output, $"boom {round}\n");
            }

            await protocol.UntilRunstateAsync(Runstate.Disconnecting);
            if (round % 2 == 0)
            {
                await Assert.ThrowsAsync<EndOfStreamException>(() => protocol.DisconnectAsync().Bounded(), $"round {round}");
            }
            else
            {
                var error = await Assert.ThrowsAsync<RoundException>(() => protocol.DisconnectAsync().Bounded(), $"round {round}");
                Assert.That(error!.Round, Is.EqualTo(round), "the very exception of this session");
            }

            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");

            // The next session, at once: clean, whatever the last one did.
            (mine, peer) = SessionSpecKit.CrossedPipes();
            await protocol.OpenAsync(mine).Bounded();
            await protocol.SendLineAsync($"fine {round}").Bounded();
            Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input), Is.EqualTo($"fine {round}"));
            Assert.That(await Capture(protocol.DisconnectAsync()), Is.Null, $"round {round}: a clean session raises nothing");
            Assert.That(await Capture(protocol.DisconnectAsync()), Is.Null, $"round {round}: nor does a second DisconnectAsync");
            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
        }

        var ended = protocol.EndedRootCauses.ToArray();
        Assert.That(ended, Has.Length.EqualTo(100));
        for (var round = 0; round < 50; round++)
        {
            Assert.That(ended[2 * round], round % 2 == 0 ? Is.InstanceOf<EndOfStreamException>() : Is.InstanceOf<RoundException>(), $"round {round}: the failing session");
            Assert.That(ended[(2 * round) + 1], Is.Null, $"round {round}: the clean session saw no root cause");
        }
    }

    [Test]
    public async Task A_peer_closing_while_DisconnectAsync_races_it_leaves_nothing_behind_for_the_next_session_over_fifty_cycles()
    {
        var protocol = Own(new HookProtocol(name: "racing"));
        for (var round = 0; round < 50; round++)
        {
            var (mine, peer) = SessionSpecKit.CrossedPipes();
            await protocol.OpenAsync(mine).Bounded();
            var close = Task.Run(async () => await peer.Output.CompleteAsync());
            var error = await Capture(protocol.DisconnectAsync());
            await close.Bounded();
            Assert.That(error, Is.Null.Or.InstanceOf<EndOfStreamException>(), $"round {round}: a clean end or the peer's");
            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");

            (mine, peer) = SessionSpecKit.CrossedPipes();
            await protocol.OpenAsync(mine).Bounded();
            await protocol.SendLineAsync($"fine {round}").Bounded();
            Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input), Is.EqualTo($"fine {round}"));
            Assert.That(await Capture(protocol.DisconnectAsync()), Is.Null, $"round {round}: the next session ends clean");
        }
    }

    [Test]
    public async Task A_session_that_hung_up_from_OnMessageAsync_and_reached_Idle_by_itself_is_followed_at_once_by_a_clean_session_over_thirty_cycles()
    {
        var protocol = Own(new HookProtocol(name: "self-ending"));
        protocol.OnLine = async (p, line, context, _) =>
        {
            if (line == "quit")
            {
                await p.DisconnectAsync().WaitAsync(HookBound); // raises OperationCanceledException, which ends the hook
            }
        };

        for (var round = 0; round < 30; round++)
        {
            var (mine, peer) = SessionSpecKit.CrossedPipes();
            await protocol.OpenAsync(mine).Bounded();
            var watched = SessionSpecKit.CollectAsync(protocol.WatchRunstateAsync(), 2);
            await SessionSpecKit.WriteAsync(peer.Output, "quit\n");
            Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Disconnecting, Runstate.Idle }), $"round {round}: Idle by itself");

            (mine, peer) = SessionSpecKit.CrossedPipes();
            await protocol.OpenAsync(mine).Bounded();
            await protocol.SendLineAsync($"fine {round}").Bounded();
            Assert.That(await SessionSpecKit.ReadLineAsync(peer.Input), Is.EqualTo($"fine {round}"));
            Assert.That(await Capture(protocol.DisconnectAsync()), Is.Null, $"round {round}: the next session ends clean");
        }

        Assert.That(protocol.EndedRootCauses, Has.Count.EqualTo(60).And.All.Null, "no session had a root cause");
    }

    // -------------------------------------------------------------------------------------------
    // 11. Concurrency smoke: many DisconnectAsync callers racing with senders.
    // -------------------------------------------------------------------------------------------

    [TestCase(false)]
    [TestCase(true)]
    public async Task Sixteen_threads_calling_DisconnectAsync_while_four_threads_send_all_complete_and_every_completed_send_is_delivered(bool overTcp)
    {
        for (var round = 0; round < 3; round++)
        {
            var protocol = Own(new HookProtocol(name: "raced"));
            Stream peerStream;
            Socket? listener = null;
            Socket? peerSocket = null;
            if (overTcp)
            {
                listener = SessionSpecKit.ListenRaw(out var endPoint);
                var connect = protocol.ConnectAsync(endPoint);
                peerSocket = await listener.AcceptAsync().Bounded();
                await connect.Bounded();
                peerStream = new NetworkStream(peerSocket, ownsSocket: false);
            }
            else
            {
                var (mine, peer) = SessionSpecKit.CrossedPipes();
                await protocol.OpenAsync(mine).Bounded();
                peerStream = peer.Input.AsStream();
            }

            using (listener)
            using (peerSocket)
            await using (peerStream)
            {
                var reading = Task.Run(() => ReadAllLinesAsync(peerStream));
                var completed = 0;
                var senders = Enumerable.Range(0, 4).Select(sender => Task.Run(async () =>
                {
                    for (var n = 0; ; n++)
                    {
                        try
                        {
                            await protocol.SendLineAsync($"{sender}:{n}").AsTask().WaitAsync(TestTimeouts.Default);
                        }
                        catch (StateException)
                        {
                            return n;
                        }

                        Interlocked.Increment(ref completed);
                        if (n % 64 == 0)
                        {
                            await Task.Yield();
                        }
                    }
                })).ToArray();

                await SessionSpecKit.WaitUntilAsync(() => Volatile.Read(ref completed) >= 2000 || senders.Any(s => s.IsCompleted), "the senders get going");

                var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var disconnects = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
                {
                    await go.Task;
                    await protocol.DisconnectAsync();
                })).ToArray();
                go.SetResult();

                foreach (var disconnect in disconnects)
                {
                    Assert.That(await Capture(disconnect), Is.Null, $"round {round}: every DisconnectAsync completes, raising nothing");
                }

                Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
                var sent = await Task.WhenAll(senders).Bounded();
                var lines = await reading.Bounded();

                var delivered = new int[4];
                foreach (var line in lines)
                {
                    var parts = line.Split(':');
                    var sender = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
                    var n = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
                    Assert.That(n, Is.EqualTo(delivered[sender]), $"round {round}: sender {sender}'s lines arrive in order, none lost");
                    delivered[sender]++;
                }

                using (Assert.EnterMultipleScope())
                {
                    Assert.That(lines, Has.Count.EqualTo(sent.Sum()), $"round {round}: delivered == completed sends");
                    Assert.That(delivered, Is.EqualTo(sent), $"round {round}: per sender");
                    Assert.That(sent.Sum(), Is.EqualTo(Volatile.Read(ref completed)));
                }
            }
        }
    }

    // -------------------------------------------------------------------------------------------
    // Helpers
    // -------------------------------------------------------------------------------------------

    /// <summary>Awaits <paramref name="task"/> (bounded) and returns what it raised, or null.</summary>
    private static async Task<Exception?> Capture(Task task)
    {
        try
        {
            await task.Bounded();
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    /// <summary>Starts a connection attempt of <paramref name="kind"/> and returns it with the raw peer socket (and the raw listener, if any).</summary>
    private static async Task<(Task Attempt, Socket Peer, Socket? Listener)> StartAttemptAsync(HookProtocol protocol, Attempt kind)
    {
        if (kind == Attempt.Connect)
        {
            var listener = SessionSpecKit.ListenRaw(out var endPoint);
            var connect = protocol.ConnectAsync(endPoint);
            var accepted = await listener.AcceptAsync().Bounded();
            return (connect, accepted, listener);
        }

        var bound = await protocol.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        var accept = protocol.AcceptAsync();
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(bound).Bounded();
        return (accept, peer, null);
    }

    /// <summary>Two connected TCP sockets over loopback.</summary>
    private static async Task<(Socket Mine, Socket Peer)> ConnectedSocketsAsync()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptAsync();
        await peer.ConnectAsync(endPoint).Bounded();
        var mine = await accept.Bounded();
        return (mine, peer);
    }

    /// <summary>Reads the raw peer socket until the connection ends, by EOF or by a reset; fails on a hang.</summary>
    private static async Task AssertPeerSeesTheEndAsync(Socket peer)
    {
        var buffer = new byte[4096];
        try
        {
            while (await peer.ReceiveAsync(buffer, SocketFlags.None).Bounded() > 0)
            {
            }
        }
        catch (SocketException)
        {
            // A reset also tells the peer the connection is gone.
        }
    }

    private static async Task<List<string>> ReadAllLinesAsync(Stream stream)
    {
        var lines = new List<string>();
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, leaveOpen: true);
        while (await reader.ReadLineAsync().Bounded() is { } line)
        {
            lines.Add(line);
        }

        return lines;
    }

    private static async Task ConnectPairAsync(HookProtocol server, HookProtocol client, bool overTcp)
    {
        if (overTcp)
        {
            var bound = await server.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
            var accept = server.AcceptAsync();
            await client.ConnectAsync(bound).Bounded();
            await accept.Bounded();
        }
        else
        {
            var (a, b) = SessionSpecKit.CrossedPipes();
            await Task.WhenAll(server.OpenAsync(a), client.OpenAsync(b)).Bounded();
        }
    }

    /// <summary>Makes the end hook of <paramref name="protocol"/> await <paramref name="call"/> and report what it raised and how long it took.</summary>
    private static TaskCompletionSource<(Exception? Error, TimeSpan Took)> CallFromEndHook(HookProtocol protocol, Func<HookProtocol, Task> call)
    {
        var outcome = new TaskCompletionSource<(Exception?, TimeSpan)>(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.OnEnded = async (p, _) =>
        {
            var started = Stopwatch.StartNew();
            try
            {
                await call(p).WaitAsync(HookBound);
                outcome.TrySetResult((null, started.Elapsed));
            }
            catch (Exception ex)
            {
                outcome.TrySetResult((ex, started.Elapsed));
            }
        };
        return outcome;
    }

    private static async Task EndSessionAndCheckEndHookCallAsync(HookProtocol protocol, Ending ending, TaskCompletionSource<(Exception? Error, TimeSpan Took)> outcome)
    {
        protocol.OnLine = (_, line, context, _) => line == "boom" ? throw new InvalidOperationException("boom") : ValueTask.CompletedTask;
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        await protocol.OpenAsync(mine).Bounded();

        switch (ending)
        {
            case Ending.PeerClosed:
                await peer.Output.CompleteAsync().Bounded();
                break;
            case Ending.HandlerFailed:
                await SessionSpecKit.WriteAsync(peer.Output, "boom\n");
                break;
            case Ending.LocalDisconnect:
                Assert.That(await Capture(protocol.DisconnectAsync()), Is.Null, "the application's own DisconnectAsync completes cleanly");
                break;
        }

        var (error, took) = await outcome.Task.Bounded();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(error, Is.Null, "the call made from OnSessionEndedAsync returns without raising");
            Assert.That(took, Is.LessThan(Promptly), "it returns at once");
        }

        await protocol.UntilRunstateAsync(Runstate.Idle).WaitAsync(Promptly);
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(protocol.EndedRootCauses, Has.Count.EqualTo(1), "the end hook ran once");
    }

    /// <summary>A protocol with a hook for each of the session's own flows.</summary>
    private sealed class HookProtocol(PipeProtocolOptions? options = null, string? name = null)
        : PipeProtocol<string>(new Utf8LineFramer(), options ?? SessionSpecKit.Quick, null, name)
    {
        /// <summary>Runs as EstablishSessionAsync.</summary>
        public Func<HookProtocol, HandshakeContext<string>, CancellationToken, Task>? Handshake { get; set; }

        /// <summary>Runs as OnMessageAsync.</summary>
        public Func<HookProtocol, string, MessageContext<string>, CancellationToken, ValueTask>? OnLine { get; set; }

        /// <summary>Runs inside OnSessionEndedAsync, after the root cause is recorded.</summary>
        public Func<HookProtocol, Exception?, Task>? OnEnded { get; set; }

        /// <summary>The root cause each OnSessionEndedAsync call saw, in order.</summary>
        public ConcurrentQueue<Exception?> EndedRootCauses { get; } = new();

        public ValueTask SendLineAsync(string line, CancellationToken cancellationToken = default) => SendAsync(line, cancellationToken);

        protected override Task EstablishSessionAsync(HandshakeContext<string> handshake, CancellationToken cancellationToken)
            => Handshake?.Invoke(this, handshake, cancellationToken) ?? Task.CompletedTask;

        protected override ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken)
            => OnLine?.Invoke(this, message, context, cancellationToken) ?? ValueTask.CompletedTask;

        protected override async ValueTask OnSessionEndedAsync(Exception? rootCause)
        {
            EndedRootCauses.Enqueue(rootCause);
            if (OnEnded is { } hook)
            {
                await hook(this, rootCause);
            }
        }
    }

    /// <summary>An error tagged with the round of the session that raised it.</summary>
    private sealed class RoundException(int round) : Exception($"boom in round {round}")
    {
        public int Round { get; } = round;
    }
}
