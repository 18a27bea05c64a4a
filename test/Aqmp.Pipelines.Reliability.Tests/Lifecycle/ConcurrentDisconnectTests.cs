using System.Diagnostics;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Lifecycle;

/// <summary>
/// <c>DisconnectAsync</c> from sixteen threads released at the same instant, two hundred times
/// over: on a running session every call completes without error; on a session that already ended
/// by itself with an error, that root cause is raised — at least once, always the very same
/// exception, never another — and every call completes; either way the object ends
/// <see cref="Runstate.Idle"/>, connects again, and no descriptor is left open.
/// </summary>
[NonParallelizable] // counts process-wide descriptors
public sealed class ConcurrentDisconnectTests : LifecycleFixture
{
    private const int Callers = 16;
    private const int Rounds = 200;

    [Test]
    public async Task Sixteen_simultaneous_DisconnectAsync_calls_on_a_running_session_all_complete_without_error_and_leave_it_Idle_every_time()
    {
        await using var server = LifecycleEchoServer.Start(SocketFiles);
        await using var client = new LineProtocol(name: "sixteen");
        using var callers = new LifecycleConcurrentCallers(Callers);
        await EchoOnceAsync(client, server, "warm-up");
        await client.DisconnectAsync().Bounded();
        await server.UntilIdleAsync();
        var before = LifecycleResources.Take();
        var clock = Stopwatch.StartNew();

        for (var round = 0; round < Rounds; round++)
        {
            await EchoOnceAsync(client, server, $"round {round}");
            var calls = callers.InvokeAll(() => client.DisconnectAsync());

            await Task.WhenAll(calls).Bounded();
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
        }

        clock.Stop();
        await server.UntilIdleAsync();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report($"{Callers} concurrent disconnects of a running session", Rounds, before, after, clock.Elapsed);
        Assert.That(server.Errors, Is.Empty);
        LifecycleResources.AssertDescriptorsReturned(before, after);
    }

    [Test]
    public async Task Sixteen_simultaneous_DisconnectAsync_calls_on_a_session_that_ended_with_an_error_raise_only_its_root_cause_and_leave_it_Idle_every_time()
    {
        await using var server = LifecycleEchoServer.Start(SocketFiles);
        await using var client = new LineProtocol(name: "failed");
        using var callers = new LifecycleConcurrentCallers(Callers);
        var before = LifecycleResources.Take();
        var raisedPerRound = new List<int>(Rounds);
        var clock = Stopwatch.StartNew();

        for (var round = 0; round < Rounds; round++)
        {
            // The echo of "fail" makes the client's own handler throw: the session ends by itself
            // with that exception as its root cause and waits in Disconnecting.
            var rootCause = new InvalidOperationException($"handler failure of round {round}");
            client.OnLine = (line, _) => line == "fail" ? throw rootCause : ValueTask.CompletedTask;
            await client.ConnectAsync(server.EndPoint).Bounded();
            await client.SendLineAsync("fail").Bounded();
            await client.UntilRunstateAsync(Runstate.Disconnecting);
            await UntilAsync(() => client.SessionEnded.RootCause == rootCause);

            var calls = callers.InvokeAll(() => client.DisconnectAsync());

            await Task.WhenAll(calls.Select(call => call.ContinueWith(_ => { }, TaskScheduler.Default))).Bounded();
            var raised = calls.Where(call => call.IsFaulted).Select(call => call.Exception!.InnerException!).ToList();
            using (Assert.EnterMultipleScope())
            {
                Assert.That(calls.Count(call => call.IsCanceled), Is.Zero, $"round {round}: no call was cancelled");
                Assert.That(raised, Is.Not.Empty, $"round {round}: the root cause is raised (at least once)");
                Assert.That(raised, Is.All.SameAs(rootCause), $"round {round}: every call that raises, raises the root cause itself");
                Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), $"round {round}");
            }

            raisedPerRound.Add(raised.Count);
        }

        clock.Stop();
        await server.UntilIdleAsync();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report($"{Callers} concurrent disconnects of a failed session", Rounds, before, after, clock.Elapsed);
        TestContext.Progress.WriteLine(
            "callers that saw the root cause, per round: "
            + string.Join(", ", raisedPerRound.GroupBy(n => n).OrderBy(g => g.Key).Select(g => $"{g.Key} caller(s) in {g.Count()} rounds")));
        Assert.That(server.Errors, Is.Empty);
        LifecycleResources.AssertDescriptorsReturned(before, after);
    }

    private static async Task EchoOnceAsync(LineProtocol client, LifecycleEchoServer server, string line)
    {
        await client.ConnectAsync(server.EndPoint).Bounded();
        await client.SendLineAsync(line).Bounded();
        Assert.That(await client.NextLineAsync(TestTimeouts.Default), Is.EqualTo(line));
    }

    private static async Task UntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        while (!condition())
        {
            await Task.Delay(1, timeout.Token);
        }
    }
}
