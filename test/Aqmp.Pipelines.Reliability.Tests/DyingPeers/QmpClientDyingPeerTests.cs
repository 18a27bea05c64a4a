using System.Net.Sockets;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.DyingPeers;

/// <summary>
/// The exhaustive matrix of a QMP server dying under a <see cref="QmpClient"/>: at every stage of
/// the connection (before the greeting, in the middle of it, around <c>qmp_capabilities</c>, in the
/// middle of a reply or an event, with executes pending) and by both deaths (FIN, reset), over real
/// sockets driven by a scripted raw peer. Each time: a connect stage fails <c>ConnectAsync</c> with
/// <see cref="QmpNegotiationException"/> carrying the root cause; a running session ends by itself,
/// interrupts every pending execute with <see cref="QmpExecuteInterruptedException"/> carrying the
/// root cause, ends every listener with it, and <c>DisconnectAsync</c> raises that very root cause.
/// Afterwards the client is <see cref="Runstate.Idle"/>, the process holds no more sockets
/// than before, and the same client connects again and works.
/// </summary>
/// <remarks>
/// The root cause is exact: a FIN at a frame boundary is <see cref="EndOfStreamException"/>, a FIN in
/// the middle of a line is <see cref="IncompleteFrameException"/> (counting the bytes received), and a
/// reset, wherever it falls, is the socket's <see cref="IOException"/> wrapping a
/// <see cref="SocketException"/> with <see cref="SocketError.ConnectionReset"/> (a reset in the middle
/// of a line is the reset, not an incomplete frame). Non-parallelizable: it counts the process's open sockets.
/// </remarks>
[NonParallelizable]
public sealed class QmpClientDyingPeerTests
{
    private const string Greeting = """{"QMP":{"version":{"qemu":{"micro":1,"minor":2,"major":9},"package":"v9.2.1"},"capabilities":["oob"]}}""";
    private const string Event = """{"event":"TICK","data":{"n":7},"timestamp":{"seconds":1700000000,"microseconds":1}}""";
    private const int ManyPending = 16;

    // The length of {"execute":"qmp_capabilities", the least the client sends.
    private const int CapabilitiesPrefixLength = 30;

    private readonly SocketFiles _socketFiles = new();

    /// <summary>Where the peer dies during the negotiation.</summary>
    public enum NegotiationStage
    {
        /// <summary>Accepts, then dies without a byte.</summary>
        BeforeGreeting,

        /// <summary>Sends half of the greeting line.</summary>
        MidGreeting,

        /// <summary>Sends the greeting and lets <c>qmp_capabilities</c> arrive, unread.</summary>
        AfterGreetingBeforeReadingCapabilities,

        /// <summary>Reads <c>qmp_capabilities</c> and dies instead of answering.</summary>
        AfterReadingCapabilitiesBeforeReply,

        /// <summary>Sends half of the <c>qmp_capabilities</c> reply.</summary>
        MidCapabilitiesReply,
    }

    /// <summary>Where the peer dies once the session runs.</summary>
    public enum RunningStage
    {
        /// <summary>Nothing pending, nothing in flight.</summary>
        NothingPending,

        /// <summary>Reads <see cref="ManyPending"/> commands, then dies at a frame boundary.</summary>
        ExecutesPending,

        /// <summary>Reads one command and sends half of its reply.</summary>
        MidReply,

        /// <summary>Reads three commands, sends two events and half of a third.</summary>
        MidEvent,
    }

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    /// <summary>
    /// One good session over each transport first: the runtime opens descriptors of its own on first
    /// use of sockets (the socket engine's epoll and its wake-up pipe), which must not count as leaks.
    /// </summary>
    [OneTimeSetUp]
    public async Task WarmUpTheSocketEngine()
    {
        foreach (var death in Enum.GetValues<PeerDeath>())
        {
            using var peer = RawSocketPeer.ListenFor(death, _socketFiles);
            await using var client = new QmpClient(name: "warm-up");
            await ConnectAgainAndWorkAsync(client, peer, baseline: int.MaxValue);
        }
    }

    public static IEnumerable<TestCaseData> NegotiationCases() =>
        from stage in Enum.GetValues<NegotiationStage>()
        from death in Enum.GetValues<PeerDeath>()
        select new TestCaseData(stage, death).SetName($"A_peer_dying_by_{death}_{stage}_fails_ConnectAsync_with_QmpNegotiationException_carrying_the_root_cause_leaves_Idle_leaks_nothing_and_the_client_connects_again");

    public static IEnumerable<TestCaseData> RunningCases() =>
        from stage in Enum.GetValues<RunningStage>()
        from death in Enum.GetValues<PeerDeath>()
        select new TestCaseData(stage, death).SetName($"A_peer_dying_by_{death}_{stage}_ends_the_session_by_itself_interrupts_executes_and_listeners_with_the_root_cause_DisconnectAsync_raises_it_and_nothing_leaks");

    [TestCaseSource(nameof(NegotiationCases))]
    public async Task A_peer_dying_during_the_negotiation(NegotiationStage stage, PeerDeath death)
    {
        using var peer = RawSocketPeer.ListenFor(death, _socketFiles);
        var baseline = LeakChecks.OpenSockets();
        using var signal = new ConnectedSignal();
        await using var client = new QmpClient(loggerFactory: signal, name: "client");

        var connecting = client.ConnectAsync(peer.EndPoint);
        var incompleteBytes = 0;
        using (var connection = await peer.AcceptAsync())
        {
            await signal.Connected.Bounded();
            switch (stage)
            {
                case NegotiationStage.BeforeGreeting:
                    break;
                case NegotiationStage.MidGreeting:
                    incompleteBytes = Greeting.Length / 2;
                    await connection.WriteAsync(Greeting[..incompleteBytes]);
                    break;
                case NegotiationStage.AfterGreetingBeforeReadingCapabilities:
                    await connection.WriteAsync(Greeting + "\n");
                    await connection.WaitUntilUnreadAsync(CapabilitiesPrefixLength);
                    break;
                case NegotiationStage.AfterReadingCapabilitiesBeforeReply:
                    await connection.WriteAsync(Greeting + "\n");
                    await connection.ReadLineAsync();
                    break;
                case NegotiationStage.MidCapabilitiesReply:
                    await connection.WriteAsync(Greeting + "\n");
                    var reply = ReturnJson(QmpMessage.Parse(await connection.ReadLineAsync()));
                    incompleteBytes = reply.Length / 2;
                    await connection.WriteAsync(reply[..incompleteBytes]);
                    break;
            }

            connection.Die(death);
            var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.Bounded());
            TestContext.Progress.WriteLine($"{stage}/{death}: ConnectAsync raised {Describe(error!)}");

            Assert.That(error, Is.InstanceOf<ConnectException>());
            Assert.That(error!.ErrorMessage, Is.EqualTo(ConnectException.SessionPhase));
            Assert.That(error.Reason, Does.Contain(death == PeerDeath.Fin ? "closed the connection" : "connection failed"), "the reason names the peer going away");

            AssertRootCause(error.InnerException, death, incompleteBytes);
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), "a failed negotiation rolls back to Idle");
        }

        await Assert.DoesNotThrowAsync(() => client.DisconnectAsync().Bounded(), "no root cause is left over for DisconnectAsync");
        await LeakChecks.UntilSocketsReturnToAsync(baseline, "after the failed connect");
        await ConnectAgainAndWorkAsync(client, peer, baseline);
    }

    [Test]
    public async Task A_reset_during_the_negotiation_is_reported_as_the_connection_failing_not_as_a_peer_that_is_not_a_QMP_server()
    {
        using var peer = RawSocketPeer.ListenFor(PeerDeath.Reset, _socketFiles);
        await using var client = new QmpClient(name: "client");
        var connecting = client.ConnectAsync(peer.EndPoint);
        using var connection = await peer.AcceptAsync();
        await connection.WriteAsync(Greeting + "\n");
        await connection.ReadLineAsync(); // qmp_capabilities: the client is connected and negotiating

        connection.Die(PeerDeath.Reset);

        var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.Bounded());
        Assert.That(error!.InnerException, Is.TypeOf<IOException>(), "the reset is the cause");
        Assert.That(error.Reason, Does.Not.Contain("not a QMP server"), "a server that crashed is not a server that speaks another protocol");
        Assert.That(error.Message, Does.Not.Contain("not a QMP server"));
    }

    [TestCaseSource(nameof(RunningCases))]
    public async Task A_peer_dying_while_the_session_runs(RunningStage stage, PeerDeath death)
    {
        using var peer = RawSocketPeer.ListenFor(death, _socketFiles);
        var baseline = LeakChecks.OpenSockets();
        await using var client = new QmpClient(name: "client");
        using var listener = client.Listen();

        var connecting = client.ConnectAsync(peer.EndPoint);
        var connection = await peer.AcceptAsync();
        try
        {
            await NegotiateAsync(connection);
            await connecting.Bounded();

            var pendingCount = stage switch
            {
                RunningStage.ExecutesPending => ManyPending,
                RunningStage.MidReply => 1,
                RunningStage.MidEvent => 3,
                _ => 0,
            };
            var executes = Enumerable.Range(0, pendingCount).Select(i => client.ExecuteAsync($"cmd-{i}")).ToArray();
            var commands = await connection.ReadLinesAsync(pendingCount);
            Assert.That(commands.Select(line => QmpMessage.Parse(line).CommandName), Is.EqualTo(Enumerable.Range(0, pendingCount).Select(i => $"cmd-{i}")), "the peer read every command");

            var incompleteBytes = 0;
            var completeEvents = 0;
            switch (stage)
            {
                case RunningStage.MidReply:
                    var reply = ReturnJson(QmpMessage.Parse(commands[0]));
                    incompleteBytes = reply.Length / 2;
                    await connection.WriteAsync(reply[..incompleteBytes]);
                    break;
                case RunningStage.MidEvent:
                    completeEvents = 2;
                    incompleteBytes = Event.Length / 2;
                    await connection.WriteAsync(Event + "\n" + Event + "\n" + Event[..incompleteBytes]);
                    break;
            }

            connection.Die(death);

            // The session ends by itself: the executes fail and the listener ends without DisconnectAsync.
            await client.UntilRunstateAsync(Runstate.Disconnecting);
            var interruptions = new List<QmpExecuteInterruptedException>();
            for (var i = 0; i < executes.Length; i++)
            {
                var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => executes[i].Bounded());
                Assert.That(interrupted!.Command, Is.EqualTo($"cmd-{i}"));
                interruptions.Add(interrupted);
            }

            var (events, listenerEnd) = await DrainAsync(listener);
            Assert.That(events, Has.Count.EqualTo(completeEvents), "every complete event was delivered before the end");
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Disconnecting), "only DisconnectAsync returns the client to Idle");

            var rootCause = await Assert.CatchAsync<Exception>(() => client.DisconnectAsync().Bounded());
            TestContext.Progress.WriteLine($"{stage}/{death}: DisconnectAsync raised {Describe(rootCause!)}; {interruptions.Count} executes interrupted");

            AssertRootCause(rootCause, death, incompleteBytes);
            Assert.That(interruptions.Select(e => e.InnerException), Is.All.SameAs(rootCause), "each interrupted execute carries the root cause");
            Assert.That(listenerEnd, Is.SameAs(rootCause), "the listener's enumeration ends with the root cause");
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
            await Assert.DoesNotThrowAsync(() => client.DisconnectAsync().Bounded(), "the root cause is raised once");
        }
        finally
        {
            connection.Dispose();
        }

        await LeakChecks.UntilSocketsReturnToAsync(baseline, "after the session ended");
        await ConnectAgainAndWorkAsync(client, peer, baseline);
    }

    [Test]
    public async Task A_Unix_socket_peer_that_exits_with_commands_unread_resets_the_connection_and_the_reset_interrupts_every_pending_execute()
    {
        // QEMU exiting with commands still in its socket: AF_UNIX reports that as ECONNRESET.
        using var peer = RawSocketPeer.ListenUnix(_socketFiles);
        var baseline = LeakChecks.OpenSockets();
        await using var client = new QmpClient(name: "client");
        var connecting = client.ConnectAsync(peer.EndPoint);
        using (var connection = await peer.AcceptAsync())
        {
            await NegotiateAsync(connection);
            await connecting.Bounded();
            var executes = Enumerable.Range(0, ManyPending).Select(i => client.ExecuteAsync($"cmd-{i}")).ToArray();
            await connection.WaitUntilUnreadAsync(ManyPending * """{"execute":"cmd-0","id":0}""".Length);

            connection.Socket.Close();

            await client.UntilRunstateAsync(Runstate.Disconnecting);
            var interruptions = new List<Exception?>();
            foreach (var execute in executes)
            {
                interruptions.Add((await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded()))!.InnerException);
            }

            var rootCause = await Assert.CatchAsync<Exception>(() => client.DisconnectAsync().Bounded());
            TestContext.Progress.WriteLine($"Unix peer exiting with input unread: DisconnectAsync raised {Describe(rootCause!)}");
            AssertRootCause(rootCause, PeerDeath.Reset, incompleteBytes: 0);
            Assert.That(interruptions, Is.All.SameAs(rootCause));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        }

        await LeakChecks.UntilSocketsReturnToAsync(baseline, "after the session ended");
        await ConnectAgainAndWorkAsync(client, peer, baseline);
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    private static void AssertRootCause(Exception? cause, PeerDeath death, int incompleteBytes)
    {
        if (death == PeerDeath.Reset)
        {
            Assert.That(cause, Is.TypeOf<IOException>(), "a reset is the socket's IOException, wherever it falls");
            Assert.That(cause!.InnerException, Is.TypeOf<SocketException>());
            Assert.That(((SocketException)cause.InnerException!).SocketErrorCode, Is.EqualTo(SocketError.ConnectionReset));
        }
        else if (incompleteBytes > 0)
        {
            Assert.That(cause, Is.TypeOf<IncompleteFrameException>(), "a FIN in the middle of a line");
            Assert.That(((IncompleteFrameException)cause!).BytesReceived, Is.EqualTo(incompleteBytes));
            Assert.That(cause.InnerException, Is.TypeOf<EndOfStreamException>());
        }
        else
        {
            Assert.That(cause, Is.TypeOf<EndOfStreamException>(), "a FIN at a frame boundary");
        }
    }

    /// <summary>The peer's side of a successful negotiation.</summary>
    private static async Task NegotiateAsync(RawConnection connection)
    {
        await connection.WriteAsync(Greeting + "\n");
        var capabilities = QmpMessage.Parse(await connection.ReadLineAsync());
        Assert.That(capabilities.CommandName, Is.EqualTo("qmp_capabilities"));
        await connection.WriteAsync(ReturnJson(capabilities) + "\n");
    }

    /// <summary>The same client object connects to a well-behaved peer, executes, and disconnects cleanly; nothing leaks.</summary>
    private static async Task ConnectAgainAndWorkAsync(QmpClient client, RawSocketPeer peer, int baseline)
    {
        var connecting = client.ConnectAsync(peer.EndPoint);
        using (var connection = await peer.AcceptAsync())
        {
            await NegotiateAsync(connection);
            await connecting.Bounded();
            var execute = client.ExecuteAsync("query-status");
            var command = QmpMessage.Parse(await connection.ReadLineAsync());
            await connection.WriteAsync(ReturnJson(command, """{"status":"running","running":true}""") + "\n");
            var status = await execute.Bounded();
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("running"), "the reconnected client works");

            // The peer closes as soon as it reads the end: the client's graceful close need not linger.
            var closed = ReadToEndThenCloseAsync(connection);
            await client.DisconnectAsync().Bounded();
            Assert.That(await closed.Bounded(), Is.Empty);
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        }

        await LeakChecks.UntilSocketsReturnToAsync(baseline, "after the second session");
    }

    private static async Task<string> ReadToEndThenCloseAsync(RawConnection connection)
    {
        var rest = await connection.ReadToEndAsync();
        connection.Socket.Close();
        return rest;
    }

    private static string ReturnJson(QmpMessage command, string valueJson = "{}")
        => $$"""{"return":{{valueJson}},"id":{{command.Id!.Value.GetRawText()}}}""";

    private static async Task<(List<QmpEvent> Events, Exception? End)> DrainAsync(QmpEventListener listener)
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        var events = new List<QmpEvent>();
        try
        {
            await foreach (var qmpEvent in listener.ReadAllAsync(bound.Token))
            {
                events.Add(qmpEvent);
            }

            return (events, null);
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested)
        {
            throw new TimeoutException($"The listener did not end within {TestTimeouts.Default}.");
        }
        catch (Exception ex)
        {
            return (events, ex);
        }
    }

    private static string Describe(Exception error)
    {
        var text = $"{error.GetType().Name}";
        for (var inner = error.InnerException; inner is not null; inner = inner.InnerException)
        {
            text += $" <- {inner.GetType().Name}";
            if (inner is SocketException socketError)
            {
                text += $"({socketError.SocketErrorCode})";
            }
        }

        return text;
    }
}
