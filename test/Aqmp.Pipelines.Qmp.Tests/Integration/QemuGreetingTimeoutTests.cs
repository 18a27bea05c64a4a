using System.Diagnostics;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Qmp.Tests.Integration;

/// <summary>
/// QEMU serves one client per monitor: while one holds it, a second connects but gets no greeting.
/// Against a real QEMU (skipped when QEMU is not on PATH, unless <c>AQMP_REQUIRE_QEMU=1</c>), the
/// second client's <c>ConnectAsync</c> fails within <see cref="QmpClientOptions.GreetingTimeout"/>
/// saying so, and the monitor serves the next client once the first has left.
/// </summary>
[TestFixture]
[Category("Qemu")]
[NonParallelizable]
public sealed class QemuGreetingTimeoutTests
{
    private static readonly TimeSpan GreetingTimeout = TimeSpan.FromMilliseconds(500);

    [TestCase(false, TestName = "While_a_first_client_holds_a_Unix_socket_monitor_a_second_ConnectAsync_fails_within_the_GreetingTimeout_and_after_the_first_disconnects_a_third_connects")]
    [TestCase(true, TestName = "While_a_first_client_holds_a_TCP_monitor_a_second_ConnectAsync_fails_within_the_GreetingTimeout_and_after_the_first_disconnects_a_third_connects")]
    public async Task A_busy_monitor(bool overTcp)
    {
        await using var qemu = await QemuProcess.StartAsync(overTcp);
        await using var first = new QmpClient(name: "first");
        await using var second = new QmpClient(new QmpClientOptions { GreetingTimeout = GreetingTimeout }, name: "second");
        await using var third = new QmpClient(name: "third");
        await first.ConnectAsync(qemu.Address).Bounded();

        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => second.ConnectAsync(qemu.Address).Bounded());
        var elapsed = clock.Elapsed;

        GreetingTimeoutAssert.IsNoGreeting(error, "0.5 s");
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(GreetingTimeout - TimeSpan.FromMilliseconds(20)).And.LessThan(GreetingTimeout + TimeSpan.FromSeconds(3)));
        Assert.That(second.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That((await first.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.Not.Empty, "the first client still holds the monitor");

        await first.DisconnectAsync().Bounded();
        await third.ConnectAsync(qemu.Address).Bounded();

        Assert.That(third.Runstate, Is.EqualTo(Runstate.Running));
        Assert.That(third.Greeting!.Version.Major, Is.EqualTo(7));
        Assert.That((await third.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.Not.Empty);
    }
}
