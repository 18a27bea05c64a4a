using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;

namespace Aqmp.Pipelines.Qmp.Tests.Simulator;

/// <summary>
/// A simulator with <see cref="QmpSimulatorOptions.MaximumClients"/> above one serves that many
/// clients at once, all monitors of one simulated machine: events reach every negotiated client,
/// a client beyond the maximum waits in the backlog, and <c>quit</c> from one ends them all.
/// </summary>
public class QmpSimulatorClientsSpecs
{
    /// <summary>How long a test watches for something that must not happen.</summary>
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    [Test]
    public async Task Fifty_clients_are_served_at_once_and_each_gets_its_own_replies()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { MaximumClients = 50 });

        var clients = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => fixture.ConnectAsync())).Bounded();
        try
        {
            var replies = await Task.WhenAll(clients.Select(client => client.ExecuteAsync("query-name"))).Bounded();

            Assert.That(replies.Select(reply => reply.ValueKind), Is.All.EqualTo(JsonValueKind.Object));
            Assert.That(fixture.Simulator.SessionsServed, Is.EqualTo(50));
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task A_client_that_never_negotiates_does_not_hold_up_another_when_two_are_served()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { MaximumClients = 2, NegotiationTimeout = Timeout.InfiniteTimeSpan });
        await using var idle = await RawQmpPeer.ConnectAsync(fixture.Path);
        Assert.That((await idle.ReadAsync()).TryGetProperty("QMP", out _), Is.True, "the idle client was greeted");

        await using var client = await fixture.ConnectAsync();

        Assert.That((await client.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.EqualTo("running"));
    }

    [Test]
    public async Task A_stop_from_one_client_reaches_every_negotiated_client_and_none_that_is_still_negotiating()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { MaximumClients = 3 });
        await using var first = await fixture.ConnectAsync();
        await using var second = await fixture.ConnectAsync();
        await using var negotiating = await RawQmpPeer.ConnectAsync(fixture.Path);
        await negotiating.ReadAsync();
        using var firstEvents = first.Listen("STOP");
        using var secondEvents = second.Listen("STOP");

        await first.ExecuteAsync("stop").Bounded();

        Assert.That((await firstEvents.ReadAsync().Bounded()).Name, Is.EqualTo("STOP"));
        Assert.That((await secondEvents.ReadAsync().Bounded()).Name, Is.EqualTo("STOP"));
        var negotiated = await negotiating.ExecuteAsync("qmp_capabilities", 1);
        Assert.That(negotiated.Compact(), Is.EqualTo("""{"return":{},"id":1}"""), "the first thing after negotiating is its reply: no STOP was kept for it");
        Assert.That((await second.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.EqualTo("paused"), "one machine");
    }

    [Test]
    public async Task A_client_that_does_not_read_its_events_holds_up_neither_the_command_that_raised_them_nor_the_others_and_loses_none()
    {
        // 2 MB in all, far beyond what the stalled client's socket and send buffer hold, in fewer
        // events than a client's listener keeps (1,024), so that the bystander cannot overflow.
        const int Events = 1000;
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { MaximumClients = 3 });
        var payload = QmpJson.Parse($$"""{"padding":"{{new string('x', 2000)}}"}""");
        fixture.Simulator.Handle("x-flood", async (context, token) =>
        {
            for (var i = 0; i < Events; i++)
            {
                await context.EmitEventAsync("FLOOD", payload, token);
            }

            return null;
        });
        await using var stalled = await RawQmpPeer.ConnectAsync(fixture.Path);
        await stalled.ReadAsync();
        await stalled.ExecuteAsync("qmp_capabilities", 1);
        await using var commanding = await fixture.ConnectAsync();
        await using var bystander = await fixture.ConnectAsync();
        using var seen = bystander.Listen("FLOOD");
        var bystanderRead = Task.Run(async () =>
        {
            for (var i = 0; i < Events; i++)
            {
                await seen.ReadAsync();
            }
        });

        await commanding.ExecuteAsync("x-flood").Bounded();

        await bystanderRead.Bounded();

        Assert.That((await bystander.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.EqualTo("running"));
        for (var i = 0; i < Events; i++)
        {
            Assert.That((await stalled.ReadAsync()).GetProperty("event").GetString(), Is.EqualTo("FLOOD"), $"event {i} of {Events}, read late");
        }
    }

    [Test]
    public async Task EmitEventAsync_reaches_every_negotiated_client()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { MaximumClients = 2 });
        await using var first = await fixture.ConnectAsync();
        await using var second = await fixture.ConnectAsync();
        using var firstEvents = first.Listen("CUSTOM");
        using var secondEvents = second.Listen("CUSTOM");

        Assert.That(await fixture.Simulator.EmitEventAsync("CUSTOM").Bounded(), Is.True);

        Assert.That((await firstEvents.ReadAsync().Bounded()).Name, Is.EqualTo("CUSTOM"));
        Assert.That((await secondEvents.ReadAsync().Bounded()).Name, Is.EqualTo("CUSTOM"));
    }

    [Test]
    public async Task EmitEventAsync_returns_false_while_the_only_client_has_not_negotiated()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var negotiating = await RawQmpPeer.ConnectAsync(fixture.Path);
        await negotiating.ReadAsync();

        Assert.That(await fixture.Simulator.EmitEventAsync("EARLY").Bounded(), Is.False, "QEMU sends events only to monitors in command mode");

        Assert.That((await negotiating.ExecuteAsync("qmp_capabilities", 1)).Compact(), Is.EqualTo("""{"return":{},"id":1}"""));
        Assert.That(await fixture.Simulator.EmitEventAsync("LATER").Bounded(), Is.True);
        Assert.That((await negotiating.ReadAsync()).GetProperty("event").GetString(), Is.EqualTo("LATER"));
    }

    [Test]
    public async Task A_client_beyond_the_maximum_waits_in_the_backlog_until_one_leaves()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { MaximumClients = 2 });
        var first = await fixture.ConnectAsync();
        await using var second = await fixture.ConnectAsync();
        await using var third = await RawQmpPeer.ConnectAsync(fixture.Path);

        var greeting = third.ReadAsync();
        await Task.WhenAny(greeting, Task.Delay(Quiet));
        Assert.That(greeting.IsCompleted, Is.False, "two clients are served: the third is not greeted yet");

        await first.DisposeAsync();

        Assert.That((await greeting.Bounded()).TryGetProperty("QMP", out _), Is.True, "greeted once the first left");
        Assert.That(fixture.Simulator.SessionsServed, Is.EqualTo(3));
    }

    [Test]
    public async Task Quit_from_one_client_answers_it_then_disconnects_the_others_and_stops_the_simulator()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { MaximumClients = 3 });
        await using var quitting = await RawQmpPeer.ConnectAsync(fixture.Path);
        await quitting.ReadAsync();
        await quitting.ExecuteAsync("qmp_capabilities", 1);
        await using var other = await RawQmpPeer.ConnectAsync(fixture.Path);
        await other.ReadAsync();
        await other.ExecuteAsync("qmp_capabilities", 1);

        await quitting.SendAsync("""{"execute":"quit","id":2}""");

        Assert.That((await quitting.ReadAsync()).GetProperty("event").GetString(), Is.EqualTo("SHUTDOWN"));
        Assert.That((await quitting.ReadAsync()).Compact(), Is.EqualTo("""{"return":{},"id":2}"""));
        await quitting.ClosesAsync();
        Assert.That((await other.ReadAsync()).GetProperty("event").GetString(), Is.EqualTo("SHUTDOWN"), "every monitor hears the machine shut down");
        await other.ClosesAsync();
        Assert.That(await fixture.Simulator.Completion.Bounded(), Is.EqualTo(QmpSimulatorStopReason.Quit));
    }

    [Test]
    public void A_maximum_below_one_is_refused()
    {
        Assert.That(() => new QmpSimulator(new QmpSimulatorOptions { MaximumClients = 0 }), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
