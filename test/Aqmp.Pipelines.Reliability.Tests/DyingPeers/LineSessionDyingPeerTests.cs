using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.DyingPeers;

/// <summary>
/// The exhaustive matrix of a peer dying under a core line-protocol session (a
/// <see cref="PipeProtocol{TMessage}"/> with a one-line handshake), over real sockets driven by a
/// scripted raw peer, by both deaths (FIN, reset): before and in the middle of the handshake line,
/// after a thousand complete lines, in the middle of a line, and in the middle of a flush (the
/// session is sending a large queued volume that the peer has only begun to read). Each time: a
/// handshake stage fails <c>ConnectAsync</c> with <see cref="ConnectException"/> carrying the root
/// cause; a running session delivers every complete line, ends by itself, a sender waiting for
/// queue space gets <see cref="StateException"/> carrying the root cause, and
/// <c>DisconnectAsync</c> raises that very root cause. Afterwards the session is
/// <see cref="Runstate.Idle"/>, holds no socket, and the same object connects again and works.
/// </summary>
/// <remarks>
/// Root causes: a FIN at a frame boundary is <see cref="EndOfStreamException"/>, a FIN in the middle
/// of a line is <see cref="IncompleteFrameException"/>, a reset is the socket's
/// <see cref="IOException"/> wrapping a <see cref="SocketException"/>. Non-parallelizable: it counts
/// the process's open sockets.
/// </remarks>
[NonParallelizable]
public sealed class LineSessionDyingPeerTests
{
    private const int CompleteLines = 1000;
    private const int FlushVolume = 200_000;
    private const int FlushLineLength = 100;
    private const int ReadBeforeDyingMidFlush = 256 * 1024;

    private readonly SocketFiles _socketFiles = new();

    /// <summary>Where the peer dies during the handshake.</summary>
    public enum HandshakeStage
    {
        /// <summary>Accepts, then dies without a byte.</summary>
        BeforeHandshakeLine,

        /// <summary>Sends half of the handshake line.</summary>
        MidHandshakeLine,
    }

    /// <summary>Where the peer dies once the session runs.</summary>
    public enum RunningStage
    {
        /// <summary>Sends a thousand complete lines, then dies at a frame boundary.</summary>
        AfterCompleteLines,

        /// <summary>Sends a thousand complete lines and half of another.</summary>
        MidFrame,

        /// <summary>Reads the first 256 KiB of a 20 MB volume being sent, then dies once the sender waits on the session's flush.</summary>
        MidFlush,
    }

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    /// <summary>One good session over each transport first, so that the runtime's own descriptors are open before any count.</summary>
    [OneTimeSetUp]
    public async Task WarmUpTheSocketEngine()
    {
        foreach (var death in Enum.GetValues<PeerDeath>())
        {
            using var peer = RawSocketPeer.ListenFor(death, _socketFiles);
            await using var session = NewSession(out _);
            await ConnectAgainAndWorkAsync(session, peer, baseline: int.MaxValue);
        }
    }

    public static IEnumerable<TestCaseData> HandshakeCases() =>
        from stage in Enum.GetValues<HandshakeStage>()
        from death in Enum.GetValues<PeerDeath>()
        select new TestCaseData(stage, death).SetName($"A_peer_dying_by_{death}_{stage}_fails_ConnectAsync_with_ConnectException_carrying_the_root_cause_leaves_Idle_leaks_nothing_and_the_session_connects_again");

    public static IEnumerable<TestCaseData> RunningCases() =>
        from stage in Enum.GetValues<RunningStage>()
        from death in Enum.GetValues<PeerDeath>()
        select new TestCaseData(stage, death).SetName($"A_peer_dying_by_{death}_{stage}_ends_the_session_by_itself_after_delivering_every_complete_line_and_DisconnectAsync_raises_the_root_cause_and_nothing_leaks");

    [TestCaseSource(nameof(HandshakeCases))]
    public async Task A_peer_dying_during_the_handshake(HandshakeStage stage, PeerDeath death)
    {
        using var peer = RawSocketPeer.ListenFor(death, _socketFiles);
        var baseline = LeakChecks.OpenSockets();
        await using var session = NewSession(out var signal);

        var connecting = session.ConnectAsync(peer.EndPoint);
        var incompleteBytes = 0;
        using (var connection = await peer.AcceptAsync())
        {
            await signal.Connected.Bounded();
            if (stage == HandshakeStage.MidHandshakeLine)
            {
                incompleteBytes = 3;
                await connection.WriteAsync("hel");
            }

            connection.Die(death);
            var error = await Assert.ThrowsAsync<ConnectException>(() => connecting.Bounded());
            TestContext.Progress.WriteLine($"{stage}/{death}: ConnectAsync raised {Describe(error!)}");

            Assert.That(error!.ErrorMessage, Is.EqualTo(ConnectException.SessionPhase));
            AssertRootCause(error.InnerException, death, incompleteBytes);
            Assert.That(session.Runstate, Is.EqualTo(Runstate.Idle), "a failed handshake rolls back to Idle");
            Assert.That(session.SessionEnded.Ran, Is.False, "a session that never ran has no end hook");
        }

        await Assert.DoesNotThrowAsync(() => session.DisconnectAsync().Bounded(), "no root cause is left over");
        await LeakChecks.UntilSocketsReturnToAsync(baseline, "after the failed connect");
        await ConnectAgainAndWorkAsync(session, peer, baseline);
    }

    [TestCaseSource(nameof(RunningCases))]
    public async Task A_peer_dying_while_the_session_runs(RunningStage stage, PeerDeath death)
    {
        using var peer = RawSocketPeer.ListenFor(death, _socketFiles);
        var baseline = LeakChecks.OpenSockets();
        await using var session = NewSession(out _);

        var connecting = session.ConnectAsync(peer.EndPoint);
        var connection = await peer.AcceptAsync();
        try
        {
            await HandshakeAsync(connection);
            await connecting.Bounded();

            var incompleteBytes = 0;
            Task? sender = null;
            var accepted = 0;
            switch (stage)
            {
                case RunningStage.AfterCompleteLines:
                    await connection.WriteAsync(string.Concat(Enumerable.Range(0, CompleteLines).Select(i => Line(i) + "\n")));
                    break;
                case RunningStage.MidFrame:
                    incompleteBytes = Line(CompleteLines).Length / 2;
                    await connection.WriteAsync(string.Concat(Enumerable.Range(0, CompleteLines).Select(i => Line(i) + "\n")) + Line(CompleteLines)[..incompleteBytes]);
                    break;
                case RunningStage.MidFlush:
                    sender = Task.Run(async () =>
                    {
                        for (var i = 0; i < FlushVolume; i++)
                        {
                            await session.SendLineAsync(FlushLine(i));
                            Volatile.Write(ref accepted, i + 1);
                        }
                    });
                    var prefix = await connection.ReadAtLeastAsync(ReadBeforeDyingMidFlush);
                    AssertInOrderPrefix(prefix);

                    // Dies only once the sender waits: the queue is full and the sender's flush waits on the peer.
                    var stalledAt = await BackpressureStall.UntilStalledAsync(() => Volatile.Read(ref accepted), FlushVolume, TimeSpan.FromMilliseconds(100));
                    Assert.That(stalledAt, Is.LessThan(FlushVolume), "the sender waits on the peer");
                    break;
            }

            connection.Die(death);

            // The session ends by itself: every complete line arrived, and a waiting sender is released.
            await session.UntilRunstateAsync(Runstate.Disconnecting);
            var delivered = stage == RunningStage.MidFlush ? [] : await session.NextLinesAsync(CompleteLines);
            Assert.That(delivered, Is.EqualTo(stage == RunningStage.MidFlush ? [] : Enumerable.Range(0, CompleteLines).Select(Line)), "every complete line, in order");
            var senderError = sender is null ? null : await Assert.ThrowsAsync<StateException>(() => sender.Bounded());
            Assert.That(session.Runstate, Is.EqualTo(Runstate.Disconnecting), "only DisconnectAsync returns the session to Idle");

            var rootCause = await Assert.CatchAsync<Exception>(() => session.DisconnectAsync().Bounded());
            TestContext.Progress.WriteLine($"{stage}/{death}: DisconnectAsync raised {Describe(rootCause!)}" + (sender is null ? string.Empty : $"; {Volatile.Read(ref accepted)} of {FlushVolume} lines were queued when the sender was stopped"));

            if (stage == RunningStage.MidFlush)
            {
                // The reset may reach the send loop (a failed send) before the read loop: both are the socket's IOException.
                AssertMidFlushRootCause(rootCause, death);
                Assert.That(senderError!.InnerException, Is.SameAs(rootCause), "the stopped sender carries the root cause");
                Assert.That(Volatile.Read(ref accepted), Is.LessThan(FlushVolume), "the sender was stopped mid-volume");
            }
            else
            {
                AssertRootCause(rootCause, death, incompleteBytes);
            }

            Assert.That(session.SessionEnded.RootCause, Is.SameAs(rootCause), "the end hook saw the same root cause");
            Assert.That(session.Runstate, Is.EqualTo(Runstate.Idle));
            await Assert.DoesNotThrowAsync(() => session.DisconnectAsync().Bounded(), "the root cause is raised once");
        }
        finally
        {
            connection.Dispose();
        }

        await LeakChecks.UntilSocketsReturnToAsync(baseline, "after the session ended");
        await ConnectAgainAndWorkAsync(session, peer, baseline);
    }

    [Test]
    public async Task A_reset_while_the_session_is_sending_is_always_the_root_cause_never_a_plain_end_of_stream()
    {
        var causes = new List<string>();
        for (var round = 0; round < 20; round++)
        {
            using var peer = RawSocketPeer.ListenTcp();
            await using var session = NewSession(out _);
            var connecting = session.ConnectAsync(peer.EndPoint);
            using var connection = await peer.AcceptAsync();
            await HandshakeAsync(connection);
            await connecting.Bounded();
            var accepted = 0;
            var sender = Task.Run(async () =>
            {
                for (var i = 0; i < FlushVolume; i++)
                {
                    await session.SendLineAsync(FlushLine(i));
                    Volatile.Write(ref accepted, i + 1);
                }
            });
            await connection.ReadAtLeastAsync(ReadBeforeDyingMidFlush);
            await BackpressureStall.UntilStalledAsync(() => Volatile.Read(ref accepted), FlushVolume, TimeSpan.FromMilliseconds(50));

            connection.Die(PeerDeath.Reset);

            await Assert.ThrowsAsync<StateException>(() => sender.Bounded());
            var cause = await Assert.CatchAsync<Exception>(() => session.DisconnectAsync().Bounded());
            causes.Add(cause!.GetType().Name);
        }

        TestContext.Progress.WriteLine($"root causes of 20 resets mid-flush: {string.Join(", ", causes.GroupBy(c => c).Select(g => $"{g.Key} x{g.Count()}"))}");
        Assert.That(causes, Is.All.EqualTo(nameof(IOException)), "the reset, which the send saw first, is the root cause");
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    private static string Line(int i) => $"line {i:D6}";

    private static string FlushLine(int i) => $"{i:D8}".PadRight(FlushLineLength, 'x');

    /// <summary>A line session whose handshake reads "hello" and answers "hello back"; its logger signals when the transport is up.</summary>
    private static LineProtocol NewSession(out ConnectedSignal signal)
    {
        signal = new ConnectedSignal();
        return new LineProtocol(loggerFactory: signal, name: "session")
        {
            Handshake = async (self, handshake, token) =>
            {
                var hello = await handshake.ReceiveAsync(token);
                Assert.That(hello, Is.EqualTo("hello"));
                await handshake.SendAsync("hello back", token);
            },
        };
    }

    private static async Task HandshakeAsync(RawConnection connection)
    {
        await connection.WriteAsync("hello\n");
        Assert.That(await connection.ReadLineAsync(), Is.EqualTo("hello back"));
    }

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

    private static void AssertMidFlushRootCause(Exception? cause, PeerDeath death)
    {
        if (death == PeerDeath.Fin)
        {
            Assert.That(cause, Is.TypeOf<EndOfStreamException>(), "the peer's FIN reaches the read loop while the flush waits");
            return;
        }

        // Linux reports a reset to one call only: when the blocked send takes it, the read loop then
        // sees a plain end of stream, and the transport reports the send's failure as the cause.
        Assert.That(cause, Is.TypeOf<IOException>(), "a reset is the socket's IOException, whichever call took it");
        {
            Assert.That(cause!.InnerException, Is.TypeOf<SocketException>(), "carrying the socket error");
            Assert.That(((SocketException)cause.InnerException!).SocketErrorCode, Is.EqualTo(SocketError.ConnectionReset).Or.EqualTo(SocketError.Shutdown));
        }
    }

    /// <summary>The bytes the peer read are the first lines of the volume, in order (the last possibly cut).</summary>
    private static void AssertInOrderPrefix(byte[] bytes)
    {
        var text = Encoding.ASCII.GetString(bytes);
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var expected = FlushLine(i);
            if (i < lines.Length - 1)
            {
                Assert.That(lines[i], Is.EqualTo(expected), $"line {i} of what the peer read");
            }
            else
            {
                Assert.That(expected, Does.StartWith(lines[i]), "the last line read is a prefix of the next line");
            }
        }
    }

    /// <summary>The same object connects to a well-behaved peer, exchanges lines, and disconnects cleanly; nothing leaks.</summary>
    private static async Task ConnectAgainAndWorkAsync(LineProtocol session, RawSocketPeer peer, int baseline)
    {
        var connecting = session.ConnectAsync(peer.EndPoint);
        using (var connection = await peer.AcceptAsync())
        {
            await HandshakeAsync(connection);
            await connecting.Bounded();
            await connection.WriteAsync("ping\n");
            Assert.That(await session.NextLineAsync(), Is.EqualTo("ping"));
            await session.SendLineAsync("pong").Bounded();
            Assert.That(await connection.ReadLineAsync(), Is.EqualTo("pong"), "the reconnected session works");

            var closed = ReadToEndThenCloseAsync(connection);
            await session.DisconnectAsync().Bounded();
            Assert.That(await closed.Bounded(), Is.Empty);
            Assert.That(session.Runstate, Is.EqualTo(Runstate.Idle));
        }

        await LeakChecks.UntilSocketsReturnToAsync(baseline, "after the second session");
    }

    private static async Task<string> ReadToEndThenCloseAsync(RawConnection connection)
    {
        var rest = await connection.ReadToEndAsync();
        connection.Socket.Close();
        return rest;
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

        return text + $": {error.Message}";
    }
}
