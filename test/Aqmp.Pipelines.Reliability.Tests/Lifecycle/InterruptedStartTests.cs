using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Lifecycle;

/// <summary>
/// A session attempt stopped while it waits — in the handshake of a connect, in an accept with no
/// client, in the QMP negotiation with a server that never answers <c>qmp_capabilities</c> — by
/// <c>DisconnectAsync</c>, by cancelling the caller's token, or by <c>DisposeAsync</c>, a hundred
/// times each: the pending call raises <see cref="OperationCanceledException"/> (never a
/// <see cref="ConnectException"/>; for a cancelled token, carrying that token), the object is
/// <see cref="Runstate.Idle"/>, the peer sees the end of the stream, and no descriptor stays open.
/// </summary>
[NonParallelizable] // counts process-wide descriptors
public sealed class InterruptedStartTests : LifecycleFixture
{
    private const int Rounds = 100;

    // Rounds before the baseline is taken: the runtime opens some descriptors lazily on first use.
    private const int WarmUpRounds = 3;

    /// <summary>How the attempt is stopped.</summary>
    public enum StopBy
    {
        DisconnectAsync,
        CancellingTheToken,
        DisposeAsync,
    }

    [TestCase(StopBy.DisconnectAsync)]
    [TestCase(StopBy.CancellingTheToken)]
    [TestCase(StopBy.DisposeAsync)]
    public async Task A_connect_stopped_while_its_handshake_waits_raises_OperationCanceledException_and_leaks_nothing(StopBy stop)
    {
        using var peer = RawPeer.ListenUnix(SocketFiles);
        LineProtocol? reused = null;
        await using var cleanup = new AsyncCleanup(() => reused);
        var before = default(LifecycleSnapshot);
        var clock = new Stopwatch();

        for (var round = -WarmUpRounds; round < Rounds; round++)
        {
            if (round == 0)
            {
                before = LifecycleResources.Take();
                clock.Start();
            }

            var client = stop == StopBy.DisposeAsync ? new LineProtocol(name: "handshake") : reused ??= new LineProtocol(name: "handshake");
            var handshakeWaits = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            client.Handshake = async (p, handshake, token) =>
            {
                handshakeWaits.TrySetResult();
                await handshake.ReceiveAsync(token); // the peer never sends a line
            };
            using var caller = new CancellationTokenSource();

            var connect = client.ConnectAsync(peer.EndPoint, cancellationToken: caller.Token);
            using var accepted = await peer.AcceptAsync();
            await handshakeWaits.Task.Bounded();
            await StopAsync(client, stop, caller);

            await AssertCancelledAsync(connect, stop, caller.Token, round);
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
            Assert.That(await RawPeer.ReadToEndAsync(accepted), Is.Empty, $"round {round}: the peer sees the end of the stream");
        }

        await AssertNothingLeakedAsync($"connect stopped in its handshake by {stop}", before, clock);
    }

    [TestCase(StopBy.DisconnectAsync)]
    [TestCase(StopBy.CancellingTheToken)]
    [TestCase(StopBy.DisposeAsync)]
    public async Task An_accept_stopped_while_no_client_comes_raises_OperationCanceledException_removes_the_socket_file_and_leaks_nothing(StopBy stop)
    {
        LineProtocol? reused = null;
        await using var cleanup = new AsyncCleanup(() => reused);
        var before = default(LifecycleSnapshot);
        var clock = new Stopwatch();

        for (var round = -WarmUpRounds; round < Rounds; round++)
        {
            if (round == 0)
            {
                before = LifecycleResources.Take();
                clock.Start();
            }

            var server = stop == StopBy.DisposeAsync ? new LineProtocol(name: "accepting") : reused ??= new LineProtocol(name: "accepting");
            var path = SocketFiles.NewPath();
            using var caller = new CancellationTokenSource();
            await server.StartServerAsync(new UnixDomainSocketEndPoint(path)).Bounded();

            var accept = server.AcceptAsync(caller.Token);
            await StopAsync(server, stop, caller);

            await AssertCancelledAsync(accept, stop, caller.Token, round);
            Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
            Assert.That(File.Exists(path), Is.False, $"round {round}: the closed listener removed its socket file");
        }

        await AssertNothingLeakedAsync($"accept stopped by {stop}", before, clock);
    }

    [TestCase(StopBy.DisconnectAsync)]
    [TestCase(StopBy.CancellingTheToken)]
    [TestCase(StopBy.DisposeAsync)]
    public async Task A_QMP_negotiation_stopped_while_the_server_never_answers_qmp_capabilities_raises_OperationCanceledException_and_leaks_nothing(StopBy stop)
    {
        using var peer = RawPeer.ListenUnix(SocketFiles);
        var address = "unix:" + ((UnixDomainSocketEndPoint)peer.EndPoint).ToString();
        QmpClient? reused = null;
        await using var cleanup = new AsyncCleanup(() => reused);
        var before = default(LifecycleSnapshot);
        var clock = new Stopwatch();

        for (var round = -WarmUpRounds; round < Rounds; round++)
        {
            if (round == 0)
            {
                before = LifecycleResources.Take();
                clock.Start();
            }

            var client = stop == StopBy.DisposeAsync ? new QmpClient(name: "negotiating") : reused ??= new QmpClient(name: "negotiating");
            using var caller = new CancellationTokenSource();

            var connect = client.ConnectAsync(address, cancellationToken: caller.Token);
            using var accepted = await peer.AcceptAsync();
            await accepted.SendAsync(Encoding.UTF8.GetBytes(Greeting + "\n"), SocketFlags.None).Bounded();
            Assert.That(await RawPeer.ReadLineAsync(accepted), Does.Contain("\"qmp_capabilities\""), $"round {round}: the client negotiates");
            await StopAsync(client, stop, caller); // the reply never comes

            await AssertCancelledAsync(connect, stop, caller.Token, round);
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
            Assert.That(await RawPeer.ReadToEndAsync(accepted), Is.Empty, $"round {round}: the peer sees the end of the stream");
        }

        await AssertNothingLeakedAsync($"QMP negotiation stopped by {stop}", before, clock);
    }

    internal const string Greeting = """{"QMP":{"version":{"qemu":{"micro":0,"minor":2,"major":9},"package":"silent"},"capabilities":["oob"]}}""";

    private static async Task StopAsync<TMessage>(PipeProtocol<TMessage> protocol, StopBy stop, CancellationTokenSource caller)
    {
        switch (stop)
        {
            case StopBy.DisconnectAsync:
                await protocol.DisconnectAsync().Bounded();
                break;
            case StopBy.CancellingTheToken:
                await caller.CancelAsync();
                break;
            case StopBy.DisposeAsync:
                await protocol.DisposeAsync().Bounded();
                break;
        }
    }

    private static async Task AssertCancelledAsync(Task pending, StopBy stop, CancellationToken callerToken, int round)
    {
        var error = await Assert.CatchAsync<OperationCanceledException>(() => pending.Bounded(), $"round {round}: the pending call is cancelled");
        Assert.That(error, Is.Not.Null);
        Assert.That(error!.InnerException, Is.Not.InstanceOf<ConnectException>(), $"round {round}");
        if (stop == StopBy.CancellingTheToken)
        {
            Assert.That(error.CancellationToken, Is.EqualTo(callerToken), $"round {round}: the cancellation carries the caller's token");
        }
    }

    private static async Task AssertNothingLeakedAsync(string what, LifecycleSnapshot before, Stopwatch clock)
    {
        clock.Stop();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report(what, Rounds, before, after, clock.Elapsed);
        LifecycleResources.AssertDescriptorsReturned(before, after);
        Assert.That(after.PendingWorkItems, Is.LessThanOrEqualTo(2), "no work left queued");
    }

    /// <summary>Disposes the object a test reuses across rounds, whatever happens.</summary>
    private sealed class AsyncCleanup(Func<IAsyncDisposable?> target) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (target() is { } disposable)
            {
                await disposable.DisposeAsync();
            }
        }
    }
}
