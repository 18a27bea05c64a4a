using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Qmp.Tests.Client;

/// <summary>The client against the in-process simulator: a whole QMP session, end to end.</summary>
public class QmpClientSimulatorTests
{
    [Test]
    public async Task Connect_reads_the_greeting_negotiates_and_runs()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        Assert.That(client.Greeting!.Version.Major, Is.EqualTo(7));
        Assert.That(client.Greeting.Capabilities, Does.Contain("oob"));
        Assert.That(client.OutOfBandEnabled, Is.False);
    }

    [Test]
    public async Task Query_status_returns_the_simulated_machine_state()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var status = await client.ExecuteAsync("query-status").Bounded();

        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("running"));
        Assert.That(status.GetProperty("running").GetBoolean(), Is.True);
    }

    [Test]
    public async Task Stop_emits_STOP_to_listeners_and_pauses_the_machine()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();
        using var listener = client.Listen("STOP");

        await client.ExecuteAsync("stop").Bounded();

        var stop = await listener.ReadAsync().Bounded();
        Assert.That(stop.Name, Is.EqualTo("STOP"));
        var status = await client.ExecuteAsync("query-status").Bounded();
        Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("paused"));
    }

    [Test]
    public async Task An_unknown_command_raises_QmpExecuteException_CommandNotFound_and_the_session_goes_on()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAsync<QmpExecuteException>(() => client.ExecuteAsync("no-such-command").Bounded());

        Assert.That(error!.ErrorClass, Is.EqualTo("CommandNotFound"));
        Assert.That(error.Command, Is.EqualTo("no-such-command"));
        Assert.That((await client.ExecuteAsync("query-status").Bounded()).ValueKind, Is.EqualTo(JsonValueKind.Object));
    }

    [Test]
    public async Task Quit_emits_SHUTDOWN_and_ends_the_session_cleanly()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();
        using var listener = client.Listen();

        await client.ExecuteAsync("quit").Bounded();

        var events = new List<string>();
        await foreach (var e in listener.ReadAllAsync().WithCancellation(new CancellationTokenSource(TestTimeouts.Default).Token))
        {
            events.Add(e.Name);
        }

        Assert.That(events, Is.EqualTo(new[] { "SHUTDOWN" }));
        await Assert.DoesNotThrowAsync(() => client.DisconnectAsync().Bounded());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        await fixture.Simulator.Completion.Bounded();
    }

    [Test]
    public async Task Two_hundred_concurrent_executes_all_get_their_own_replies()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var results = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => client.ExecuteAsync("query-status"))).Bounded();

        Assert.That(results, Has.All.Matches<JsonElement>(r => r.GetProperty("status").GetString() == "running"));
    }
}
