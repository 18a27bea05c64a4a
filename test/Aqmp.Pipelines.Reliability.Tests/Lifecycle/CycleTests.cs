using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Lifecycle;

/// <summary>
/// Connect / one message / disconnect, a thousand times over one object and over a thousand fresh
/// objects, on Unix sockets with the library on both ends: afterwards the process holds no more
/// file descriptors, queued work, threads or managed memory than before (within stated slack), and
/// every disposed object can be collected (nothing — no loop, timer or task — still references it).
/// </summary>
[NonParallelizable] // counts process-wide descriptors and memory
public sealed class CycleTests : LifecycleFixture
{
    private const int Cycles = 1000;

    private const int WarmUpCycles = 5;

    // Cycles run after the measured ones with untracked objects. Without them the very last
    // tracked object was still reachable after a full collection (only that one, and no longer
    // after one more cycle): a most-recently-used cache of the runtime's async machinery, not a
    // leak. A leak would keep older objects too.
    private const int FlushCycles = 3;

    // Managed memory a run may leave behind. One leaked session keeps at least its two pipes'
    // 16 KiB segments on each end (over 64 KiB), so leaking even 16 of 1,000 cycles exceeds it;
    // what the runtime's pools and caches keep after warm-up measured under 150 KiB.
    private const long ManagedSlackBytes = 1024 * 1024;

    [Test]
    public async Task One_line_protocol_object_connects_echoes_and_disconnects_a_thousand_times_and_leaks_nothing()
    {
        await using var server = LifecycleEchoServer.Start(SocketFiles);
        await using var client = new LineProtocol(name: "cycling");
        for (var i = 0; i < WarmUpCycles; i++)
        {
            await LineCycleAsync(client, server.EndPoint, i);
        }

        await server.UntilIdleAsync();
        var before = LifecycleResources.Take();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Cycles; i++)
        {
            await LineCycleAsync(client, server.EndPoint, i);
        }

        clock.Stop();
        await server.UntilIdleAsync();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report("line protocol, one object", Cycles, before, after, clock.Elapsed);

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(server.Served, Is.EqualTo(Cycles + WarmUpCycles), "one connection per cycle");
        Assert.That(server.Errors, Is.Empty, "the server side of every cycle opened and ended cleanly");
        LifecycleResources.AssertNoGrowth(before, after, ManagedSlackBytes);
    }

    [Test]
    public async Task A_thousand_fresh_line_protocol_objects_each_connect_echo_and_dispose_and_leak_nothing()
    {
        await using var server = LifecycleEchoServer.Start(SocketFiles);
        for (var i = 0; i < WarmUpCycles; i++)
        {
            await FreshLineObjectAsync(server.EndPoint, i);
        }

        await server.UntilIdleAsync();
        var before = LifecycleResources.Take();
        var clock = Stopwatch.StartNew();
        var objects = new List<WeakReference>(Cycles);
        for (var i = 0; i < Cycles; i++)
        {
            objects.Add(await FreshLineObjectAsync(server.EndPoint, i));
        }

        for (var i = 0; i < FlushCycles; i++)
        {
            await FreshLineObjectAsync(server.EndPoint, i);
        }

        clock.Stop();
        await server.UntilIdleAsync();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report("line protocol, fresh objects", Cycles, before, after, clock.Elapsed);
        var alive = objects.Count(o => o.IsAlive);
        TestContext.Progress.WriteLine($"line protocol, fresh objects: {alive} of {Cycles} disposed objects still reachable after a full collection");

        Assert.That(server.Errors, Is.Empty, "the server side of every cycle opened and ended cleanly");
        Assert.That(alive, Is.Zero, "a disposed object is referenced by nothing (no loop, task or timer outlives it)");
        LifecycleResources.AssertNoGrowth(before, after, ManagedSlackBytes);
    }

    [Test]
    public async Task One_QmpClient_connects_executes_and_disconnects_a_thousand_times_against_the_simulator_and_leaks_nothing()
    {
        var path = SocketFiles.NewPath();
        await using var simulator = await StartEchoSimulatorAsync(path);
        await using var client = new QmpClient(name: "cycling");
        for (var i = 0; i < WarmUpCycles; i++)
        {
            await QmpCycleAsync(client, path, i);
        }

        var before = LifecycleResources.Take();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Cycles; i++)
        {
            await QmpCycleAsync(client, path, i);
        }

        clock.Stop();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report("QmpClient, one object", Cycles, before, after, clock.Elapsed);

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(simulator.SessionsServed, Is.EqualTo(Cycles + WarmUpCycles), "one session per cycle");
        LifecycleResources.AssertNoGrowth(before, after, ManagedSlackBytes);
    }

    [Test]
    public async Task A_thousand_fresh_QmpClients_each_connect_execute_and_dispose_against_the_simulator_and_leak_nothing()
    {
        var path = SocketFiles.NewPath();
        await using var simulator = await StartEchoSimulatorAsync(path);
        for (var i = 0; i < WarmUpCycles; i++)
        {
            await FreshQmpClientAsync(path, i);
        }

        var before = LifecycleResources.Take();
        var clock = Stopwatch.StartNew();
        var objects = new List<WeakReference>(Cycles);
        for (var i = 0; i < Cycles; i++)
        {
            objects.Add(await FreshQmpClientAsync(path, i));
        }

        for (var i = 0; i < FlushCycles; i++)
        {
            await FreshQmpClientAsync(path, i);
        }

        clock.Stop();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report("QmpClient, fresh objects", Cycles, before, after, clock.Elapsed);
        var alive = objects.Count(o => o.IsAlive);
        TestContext.Progress.WriteLine($"QmpClient, fresh objects: {alive} of {Cycles} disposed clients still reachable after a full collection");

        Assert.That(alive, Is.Zero, "a disposed client is referenced by nothing (no loop, task or timer outlives it)");
        LifecycleResources.AssertNoGrowth(before, after, ManagedSlackBytes);
    }

    /// <summary>A simulator on <paramref name="path"/> that also answers <c>echo</c> with its arguments.</summary>
    internal static async Task<QmpSimulator> StartEchoSimulatorAsync(string path)
    {
        var simulator = new QmpSimulator();
        simulator.Handle("echo", (context, _) => ValueTask.FromResult(context.Arguments?.Clone()));
        await simulator.StartAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        return simulator;
    }

    internal static JsonElement EchoArguments(int sequence) => QmpJson.Parse($$"""{"seq":{{sequence}}}""");

    private static async Task LineCycleAsync(LineProtocol client, UnixDomainSocketEndPoint endPoint, int sequence)
    {
        var line = $"cycle {sequence}";
        await client.ConnectAsync(endPoint).Bounded();
        await client.SendLineAsync(line).Bounded();
        Assert.That(await client.NextLineAsync(TestTimeouts.Default), Is.EqualTo(line));
        await client.DisconnectAsync().Bounded();
    }

    // Not inlined, so that no local of the caller's frame keeps the object reachable.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task<WeakReference> FreshLineObjectAsync(UnixDomainSocketEndPoint endPoint, int sequence)
    {
        var client = new LineProtocol(name: "fresh");
        var line = $"object {sequence}";
        await client.ConnectAsync(endPoint).Bounded();
        await client.SendLineAsync(line).Bounded();
        Assert.That(await client.NextLineAsync(TestTimeouts.Default), Is.EqualTo(line));
        await client.DisposeAsync().Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        return new WeakReference(client);
    }

    private static async Task QmpCycleAsync(QmpClient client, string path, int sequence)
    {
        await client.ConnectAsync("unix:" + path).Bounded();
        var reply = await client.ExecuteAsync("echo", EchoArguments(sequence)).Bounded();
        Assert.That(reply.GetProperty("seq").GetInt32(), Is.EqualTo(sequence));
        await client.DisconnectAsync().Bounded();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task<WeakReference> FreshQmpClientAsync(string path, int sequence)
    {
        var client = new QmpClient(name: "fresh");
        await client.ConnectAsync("unix:" + path).Bounded();
        var reply = await client.ExecuteAsync("echo", EchoArguments(sequence)).Bounded();
        Assert.That(reply.GetProperty("seq").GetInt32(), Is.EqualTo(sequence));
        await client.DisposeAsync().Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        return new WeakReference(client);
    }
}
