using System.Diagnostics;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.HostileInput;

/// <summary>
/// A server that accepts the connection and then never finishes the QMP greeting — says nothing,
/// sends half a line, or never answers <c>qmp_capabilities</c> — over a real Unix socket.
/// With the default options, a greeting that never completes fails <c>ConnectAsync</c> after
/// <see cref="QmpClientOptions.GreetingTimeout"/> (5 s) with <see cref="QmpNegotiationException"/>
/// wrapping a <see cref="TimeoutException"/>; a <c>qmp_capabilities</c> reply that never comes is
/// bounded only by the caller's token. A token that fires first raises
/// <see cref="OperationCanceledException"/> carrying that token. Either way the runstate is back to
/// Idle, the peer sees the connection closed, and the process's open socket descriptors return to
/// their count before the attempt (so do they after fifty such attempts, and the managed heap).
/// Counting descriptors is process-wide, so the fixture does not run in parallel.
/// </summary>
[NonParallelizable]
public sealed class SilentGreetingTests
{
    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    /// <summary>Runs every path once before anything is measured (assembly loads, the socket engine, JIT).</summary>
    [OneTimeSetUp]
    public async Task WarmUp()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        foreach (var sent in new[] { string.Empty, """{"QMP":""", HostileConnection.GreetingJson + "\n" })
        {
            using var timeout = new CancellationTokenSource();
            var connecting = client.ConnectAsync(listener.EndPoint, cancellationToken: timeout.Token);
            using var silent = await listener.AcceptAsync();
            timeout.CancelAfter(TimeSpan.FromMilliseconds(20));
            if (sent.Length > 0)
            {
                await silent.SendRawAsync(sent).Bounded();
            }

            await Assert.CatchAsync<OperationCanceledException>(() => connecting.Bounded());
            await silent.ReadUntilClosedAsync().Bounded();
        }

        using var good = await listener.ConnectQmpAsync(client);
        var closing = good.ReadUntilClosedAsync();
        await client.DisconnectAsync().Bounded();
        await closing.Bounded();
        _socketFiles.DeleteAll();
    }

    [TestCase("", TestName = "A_server_that_never_sends_the_greeting_makes_ConnectAsync_raise_QmpNegotiationException_after_the_default_5_s_GreetingTimeout_and_leaks_no_socket")]
    [TestCase("""{"QMP": {"version": {"qemu": """, TestName = "A_server_that_sends_half_a_greeting_makes_ConnectAsync_raise_QmpNegotiationException_after_the_default_5_s_GreetingTimeout_and_leaks_no_socket")]
    public async Task A_greeting_that_never_completes(string sent)
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        var baseline = HostileDescriptors.OpenSockets();

        var connecting = client.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        var clock = Stopwatch.StartNew();
        if (sent.Length > 0)
        {
            await peer.SendRawAsync(sent).Bounded();
        }

        var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.WaitAsync(TimeSpan.FromSeconds(15)));
        var elapsed = clock.Elapsed;
        Assert.That(error!.InnerException, Is.InstanceOf<TimeoutException>());
        Assert.That(error.Message, Does.Contain("no QMP greeting within 5 s: another client may hold the monitor"));
        Assert.That(elapsed, Is.GreaterThan(TimeSpan.FromSeconds(4.5)).And.LessThan(TimeSpan.FromSeconds(8)), "the default GreetingTimeout, counted from the connection");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        var end = await peer.ReadUntilClosedAsync().Bounded();
        Assert.That(end.BytesReceived, Is.Zero, "the client sent nothing");

        await AssertNoSocketLeftAsync(baseline, $"timed out {elapsed.TotalMilliseconds:F0} ms after the connection was accepted; peer saw {end.How}");
    }

    [Test]
    public async Task A_server_that_never_answers_qmp_capabilities_makes_ConnectAsync_raise_OperationCanceledException_when_the_token_fires_200_ms_after_the_connection_and_leaks_no_socket()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        var baseline = HostileDescriptors.OpenSockets();

        using var timeout = new CancellationTokenSource();
        var connecting = client.ConnectAsync(listener.EndPoint, cancellationToken: timeout.Token);
        using var peer = await listener.AcceptAsync();
        var clock = Stopwatch.StartNew();
        timeout.CancelAfter(TimeSpan.FromMilliseconds(200));
        await peer.SendRawAsync(HostileConnection.GreetingJson + "\n").Bounded();

        var error = await Assert.CatchAsync<OperationCanceledException>(() => connecting.Bounded());
        var elapsed = clock.Elapsed;
        Assert.That(error!.CancellationToken, Is.EqualTo(timeout.Token), "the caller's own token");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        var end = await peer.ReadUntilClosedAsync().Bounded();
        Assert.That(end.BytesReceived, Is.GreaterThan(0), "the client sent the qmp_capabilities command");

        await AssertNoSocketLeftAsync(baseline, $"cancelled {elapsed.TotalMilliseconds:F0} ms after the connection was accepted; peer saw {end.How} after {end.BytesReceived} bytes");
    }

    [Test]
    public async Task DisconnectAsync_while_the_greeting_never_comes_makes_ConnectAsync_raise_OperationCanceledException_and_returns_normally()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        var baseline = HostileDescriptors.OpenSockets();

        var connecting = client.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        await client.UntilRunstateAsync(Runstate.Connecting);
        await client.DisconnectAsync().Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => connecting.Bounded());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        await peer.ReadUntilClosedAsync().Bounded();
        Assert.That(await SettledDescriptorsAsync(baseline), Is.EqualTo(baseline));
    }

    [Test]
    public async Task Fifty_connects_to_a_silent_server_half_cancelled_20_ms_after_the_connection_and_half_timed_out_by_a_20_ms_GreetingTimeout_leave_the_socket_count_and_managed_heap_where_they_were_and_the_client_then_connects_normally()
    {
        const int Attempts = 50;
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        await using var impatient = new QmpClient(new QmpClientOptions { GreetingTimeout = TimeSpan.FromMilliseconds(20) });
        var baselineDescriptors = HostileDescriptors.OpenSockets();
        var baselineHeap = ProcessResources.SettledManagedBytes();

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Attempts; i++)
        {
            var timesOut = i % 4 >= 2;
            var attempting = timesOut ? impatient : client;
            using var timeout = new CancellationTokenSource();
            var connecting = attempting.ConnectAsync(listener.EndPoint, cancellationToken: timeout.Token);
            using var peer = await listener.AcceptAsync();
            if (!timesOut)
            {
                timeout.CancelAfter(TimeSpan.FromMilliseconds(20));
            }

            if (i % 2 == 1)
            {
                await peer.SendRawAsync("""{"QMP":""").Bounded();
            }

            if (timesOut)
            {
                await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.Bounded());
            }
            else
            {
                await Assert.CatchAsync<OperationCanceledException>(() => connecting.Bounded());
            }

            Assert.That(attempting.Runstate, Is.EqualTo(Runstate.Idle), $"attempt {i}");
            await peer.ReadUntilClosedAsync().Bounded();
        }

        var elapsed = clock.Elapsed;
        var descriptors = await SettledDescriptorsAsync(baselineDescriptors);
        var heapGrowth = ProcessResources.SettledManagedBytes() - baselineHeap;
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.Name}: {Attempts} cancelled or timed-out attempts in {elapsed.TotalMilliseconds:F0} ms; open sockets {baselineDescriptors} -> {descriptors}; settled managed heap growth {heapGrowth:N0} bytes");
        Assert.That(descriptors, Is.EqualTo(baselineDescriptors));
        Assert.That(heapGrowth, Is.LessThan(1024 * 1024), "failed attempts leave nothing behind on the heap");

        using var good = await listener.ConnectQmpAsync(client);
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running), "the same client connects normally afterwards");
        var closing = good.ReadUntilClosedAsync();
        await client.DisconnectAsync().Bounded();
        await closing.Bounded();
    }

    /// <summary>Asserts that the open socket count settles back to <paramref name="baseline"/>, and reports it.</summary>
    private static async Task AssertNoSocketLeftAsync(int baseline, string outcome)
    {
        var descriptors = await SettledDescriptorsAsync(baseline);
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.Name}: {outcome}; open sockets {baseline} -> {descriptors} (all descriptors now {ProcessResources.OpenFileDescriptors()})");
        Assert.That(descriptors, Is.EqualTo(baseline), "every socket of the attempt is closed");
    }

    /// <summary>
    /// The open socket count once it has come back to <paramref name="baseline"/>, polled for
    /// up to a second (a socket's descriptor is released when its last pending operation lets go of
    /// the handle, just after the close); the last count seen otherwise.
    /// </summary>
    private static async Task<int> SettledDescriptorsAsync(int baseline)
    {
        var deadline = Stopwatch.StartNew();
        var count = HostileDescriptors.OpenSockets();
        while (count != baseline && deadline.Elapsed < TimeSpan.FromSeconds(1))
        {
            await Task.Delay(10);
            count = HostileDescriptors.OpenSockets();
        }

        return count;
    }
}
