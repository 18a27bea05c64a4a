using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Lifecycle;

/// <summary>
/// <c>DisposeAsync</c> at any moment of an object's life — idle, connecting, listening, accepting,
/// running with traffic in flight, disconnecting (ended by itself, or with a disconnect under way),
/// already disposed — fifty times each: it raises nothing, the object ends
/// <see cref="Runstate.Idle"/>, whatever was pending fails with its documented error, every later
/// guarded call raises <see cref="ObjectDisposedException"/> (<c>DisconnectAsync</c> and
/// <c>DisposeAsync</c>, which are not guarded, still complete), and no descriptor stays open.
/// </summary>
[NonParallelizable] // counts process-wide descriptors
public sealed class DisposeTests : LifecycleFixture
{
    private const int Rounds = 50;
    private const int WarmUpRounds = 3;

    /// <summary>The moment of the object's life at which it is disposed.</summary>
    public enum Moment
    {
        Idle,
        ConnectingInTheHandshake,
        Listening,
        Accepting,
        RunningWithTrafficInFlight,
        DisconnectingAfterTheSessionFailed,
        DisconnectingWithADisconnectUnderWay,
        AlreadyDisposed,
    }

    [TestCase(Moment.Idle)]
    [TestCase(Moment.ConnectingInTheHandshake)]
    [TestCase(Moment.Listening)]
    [TestCase(Moment.Accepting)]
    [TestCase(Moment.RunningWithTrafficInFlight)]
    [TestCase(Moment.DisconnectingAfterTheSessionFailed)]
    [TestCase(Moment.DisconnectingWithADisconnectUnderWay)]
    [TestCase(Moment.AlreadyDisposed)]
    public async Task DisposeAsync_raises_nothing_ends_Idle_fails_what_was_pending_and_makes_guarded_calls_raise_ObjectDisposedException(Moment moment)
    {
        await using var server = LifecycleEchoServer.Start(SocketFiles);
        using var rawPeer = RawPeer.ListenUnix(SocketFiles);
        var before = default(LifecycleSnapshot);
        var clock = new Stopwatch();

        for (var round = -WarmUpRounds; round < Rounds; round++)
        {
            if (round == 0)
            {
                await server.UntilIdleAsync();
                before = LifecycleResources.Take();
                clock.Start();
            }

            await DisposeAtAsync(moment, server, rawPeer, $"{moment}, round {round}");
        }

        clock.Stop();
        await server.UntilIdleAsync();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report($"DisposeAsync while {moment}", Rounds, before, after, clock.Elapsed);
        Assert.That(server.Errors, Is.Empty);
        LifecycleResources.AssertDescriptorsReturned(before, after);
    }

    [Test]
    public async Task Disposing_a_QmpClient_with_executes_in_flight_fails_each_unanswered_one_with_QmpExecuteInterruptedException_and_ExecuteAsync_afterwards_raises_ObjectDisposedException()
    {
        var path = SocketFiles.NewPath();
        await using var simulator = await CycleTests.StartEchoSimulatorAsync(path);
        simulator.Handle("slow-echo", async (context, token) =>
        {
            await Task.Delay(2, token);
            return context.Arguments?.Clone();
        });
        var answered = 0;
        var interrupted = 0;
        var before = default(LifecycleSnapshot);
        var clock = new Stopwatch();

        for (var round = -WarmUpRounds; round < Rounds; round++)
        {
            if (round == 0)
            {
                before = LifecycleResources.Take();
                clock.Start();
                answered = interrupted = 0;
            }

            var client = new QmpClient(name: "disposed-busy");
            await client.ConnectAsync("unix:" + path).Bounded();
            var executes = Enumerable.Range(0, 8).Select(i => client.ExecuteAsync("slow-echo", CycleTests.EchoArguments(i))).ToArray();

            await client.DisposeAsync().Bounded();

            for (var i = 0; i < executes.Length; i++)
            {
                try
                {
                    var reply = await executes[i].Bounded();
                    Assert.That(reply.GetProperty("seq").GetInt32(), Is.EqualTo(i), $"round {round}: a reply that arrived is the right one");
                    answered++;
                }
                catch (QmpExecuteInterruptedException error)
                {
                    Assert.That(error.Command, Is.EqualTo("slow-echo"));
                    Assert.That(error.InnerException, Is.Null, $"round {round}: a requested disconnect has no root cause");
                    interrupted++;
                }
            }

            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
            await Assert.ThrowsAsync<ObjectDisposedException>(async () => await client.ExecuteAsync("echo").Bounded(), $"round {round}");
        }

        clock.Stop();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report("DisposeAsync of a QmpClient with 8 executes in flight", Rounds, before, after, clock.Elapsed);
        TestContext.Progress.WriteLine($"executes in flight at disposal: {answered} answered, {interrupted} interrupted");
        Assert.That(interrupted, Is.Positive, "disposal did catch executes in flight");
        LifecycleResources.AssertDescriptorsReturned(before, after);
    }

    private static async Task DisposeAtAsync(Moment moment, LifecycleEchoServer server, RawPeer rawPeer, string context)
    {
        var protocol = new LineProtocol(name: "disposed");
        Socket? accepted = null;
        Func<Task>? checkPending = null;
        try
        {
            switch (moment)
            {
                case Moment.Idle:
                    break;

                case Moment.ConnectingInTheHandshake:
                {
                    var handshakeWaits = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    protocol.Handshake = async (p, handshake, token) =>
                    {
                        handshakeWaits.TrySetResult();
                        await handshake.ReceiveAsync(token);
                    };
                    var connect = protocol.ConnectAsync(rawPeer.EndPoint);
                    accepted = await rawPeer.AcceptAsync();
                    await handshakeWaits.Task.Bounded();
                    checkPending = () => Assert.CatchAsync<OperationCanceledException>(() => connect.Bounded(), $"{context}: the connect is cancelled");
                    break;
                }

                case Moment.Listening:
                    await protocol.StartServerAsync(new UnixDomainSocketEndPoint(TempPaths.NewSocketPath())).Bounded();
                    break;

                case Moment.Accepting:
                {
                    await protocol.StartServerAsync(new UnixDomainSocketEndPoint(TempPaths.NewSocketPath())).Bounded();
                    var accept = protocol.AcceptAsync();
                    checkPending = () => Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded(), $"{context}: the accept is cancelled");
                    break;
                }

                case Moment.RunningWithTrafficInFlight:
                {
                    await protocol.ConnectAsync(server.EndPoint).Bounded();
                    var sender = Task.Run(async () =>
                    {
                        for (var i = 0; ; i++)
                        {
                            await protocol.SendLineAsync($"in flight {i}");
                        }
                    });
                    await protocol.NextLineAsync(TestTimeouts.Default); // traffic flows both ways
                    checkPending = async () =>
                    {
                        var error = await Assert.CatchAsync<Exception>(() => sender.Bounded(), $"{context}: the sender stops");
                        Assert.That(error, Is.InstanceOf<StateException>().Or.InstanceOf<ObjectDisposedException>(), $"{context}: a send after the session ended raises a documented error");
                    };
                    break;
                }

                case Moment.DisconnectingAfterTheSessionFailed:
                    protocol.OnLine = (_, _) => throw new InvalidOperationException("the handler failed");
                    await protocol.ConnectAsync(server.EndPoint).Bounded();
                    await protocol.SendLineAsync("fail").Bounded();
                    await protocol.UntilRunstateAsync(Runstate.Disconnecting);
                    break;

                case Moment.DisconnectingWithADisconnectUnderWay:
                {
                    // The client's handler ignores the teardown's token: the teardown waits for it.
                    var handling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    protocol.OnLine = async (_, _) =>
                    {
                        handling.TrySetResult();
                        await release.Task;
                    };
                    await protocol.ConnectAsync(server.EndPoint).Bounded();
                    await protocol.SendLineAsync("hold").Bounded();
                    await handling.Task.Bounded();
                    var disconnect = protocol.DisconnectAsync();
                    Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Disconnecting), context);
                    var dispose = protocol.DisposeAsync().AsTask();
                    Assert.That(dispose.IsCompleted, Is.False, $"{context}: DisposeAsync waits for the disconnect under way");
                    release.SetResult();
                    await disconnect.Bounded();
                    await dispose.Bounded();
                    break;
                }

                case Moment.AlreadyDisposed:
                    await protocol.ConnectAsync(server.EndPoint).Bounded();
                    await protocol.DisposeAsync().Bounded();
                    break;
            }

            await protocol.DisposeAsync().Bounded();
            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle), context);
            if (checkPending is not null)
            {
                await checkPending();
            }

            await AssertDisposedAsync(protocol, server, context);
        }
        finally
        {
            await protocol.DisposeAsync();
            accepted?.Dispose();
        }
    }

    private static async Task AssertDisposedAsync(LineProtocol protocol, LifecycleEchoServer server, string context)
    {
        var (left, _) = CrossedPipes();
        using (Assert.EnterMultipleScope())
        {
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.ConnectAsync(server.EndPoint).Bounded(), $"{context}: ConnectAsync");
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.StartServerAsync(new UnixDomainSocketEndPoint(TempPaths.NewSocketPath())).Bounded(), $"{context}: StartServerAsync");
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.AcceptAsync().Bounded(), $"{context}: AcceptAsync");
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.OpenAsync(left).Bounded(), $"{context}: OpenAsync");
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.SendLineAsync("late").Bounded(), $"{context}: SendAsync");
        }

        // Not guarded: they complete, and leave it Idle.
        await protocol.DisconnectAsync().Bounded();
        await protocol.DisposeAsync().Bounded();
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle), context);
    }

    private static (IDuplexPipe Left, IDuplexPipe Right) CrossedPipes()
    {
        var a = new Pipe();
        var b = new Pipe();
        return (new Duplex(a.Reader, b.Writer), new Duplex(b.Reader, a.Writer));
    }

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
