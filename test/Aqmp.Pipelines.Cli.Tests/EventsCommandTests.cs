using System.Text.Json;
using Aqmp.Pipelines.Cli.Tests.Support;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary>
/// <c>aqmp events</c> against the in-process simulator. The simulator serves one client at a time
/// (like QEMU), so the test emits events itself with <c>QmpSimulator.EmitEventAsync</c>.
/// </summary>
[TestFixture]
public sealed class EventsCommandTests
{
    private SimulatorFixture _simulator = null!;

    [SetUp]
    public async Task StartSimulatorAsync() => _simulator = await SimulatorFixture.StartAsync();

    [TearDown]
    public async Task StopSimulatorAsync() => await _simulator.DisposeAsync();

    [Test]
    public async Task Name_and_count_print_exactly_one_JSON_line_for_the_named_event_and_exit_0()
    {
        await using var events = AqmpProcess.Start("events", _simulator.Address, "--name", "STOP", "--count", "1");
        events.CloseInput();

        // Not STOP: filtered out. Emitted first, so it is before STOP on the wire.
        await _simulator.EmitWhenConnectedAsync("RESUME");
        await _simulator.EmitAsync("POWERDOWN");
        await _simulator.EmitAsync("STOP");
        var result = await events.WaitForExitAsync();

        ToolAssert.Success(result);
        Assert.That(result.StdoutLines, Has.Count.EqualTo(1), result.ToString());
        using var line = JsonDocument.Parse(result.StdoutLines[0]);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(line.RootElement.GetProperty("event").GetString(), Is.EqualTo("STOP"));
            Assert.That(line.RootElement.GetProperty("timestamp").GetProperty("seconds").GetInt64(), Is.GreaterThan(0));
            Assert.That(line.RootElement.GetProperty("timestamp").TryGetProperty("microseconds", out _), Is.True);
            Assert.That(result.Stdout, Does.Not.Contain("RESUME").And.Not.Contain("POWERDOWN"));
        }
    }

    [Test]
    public async Task Without_a_name_every_event_is_printed_in_order_with_its_data()
    {
        await using var events = AqmpProcess.Start("events", _simulator.Address, "--count", "3");
        events.CloseInput();

        await _simulator.EmitWhenConnectedAsync("RESUME");
        await _simulator.EmitAsync("STOP");
        await _simulator.EmitAsync("DEVICE_DELETED", QmpJson.Parse("""{"device": "disk0", "path": "/machine/peripheral/disk0"}"""));
        var result = await events.WaitForExitAsync();

        ToolAssert.Success(result);
        var names = result.StdoutLines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("event").GetString()).ToList();
        Assert.That(names, Is.EqualTo(new[] { "RESUME", "STOP", "DEVICE_DELETED" }), result.ToString());
        using var deleted = JsonDocument.Parse(result.StdoutLines[2]);
        Assert.That(deleted.RootElement.GetProperty("data").GetProperty("device").GetString(), Is.EqualTo("disk0"));
    }

    [Test]
    public async Task Repeated_name_options_keep_each_named_event()
    {
        await using var events = AqmpProcess.Start("events", _simulator.Address, "--name", "STOP", "--name=RESUME", "--count", "2");
        events.CloseInput();

        await _simulator.EmitWhenConnectedAsync("POWERDOWN");
        await _simulator.EmitAsync("RESUME");
        await _simulator.EmitAsync("SHUTDOWN");
        await _simulator.EmitAsync("STOP");
        var result = await events.WaitForExitAsync();

        ToolAssert.Success(result);
        var names = result.StdoutLines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("event").GetString()).ToList();
        Assert.That(names, Is.EqualTo(new[] { "RESUME", "STOP" }), result.ToString());
    }

    [Test]
    public async Task Each_event_is_printed_as_it_arrives_and_watching_ends_with_exit_0_when_the_server_closes()
    {
        await using var events = AqmpProcess.Start("events", _simulator.Address);
        events.CloseInput();

        await _simulator.EmitWhenConnectedAsync("STOP");
        await events.WaitForStdoutLineAsync(line => line.Contains("\"STOP\"", StringComparison.Ordinal), "the STOP line before the server closes");
        await _simulator.Simulator.StopAsync().Bounded();
        var result = await events.WaitForExitAsync();

        ToolAssert.Success(result);
        Assert.That(result.StdoutLines, Has.Count.EqualTo(1), result.ToString());
    }

    [TestCase("TERM")]
    [TestCase("INT")]
    public async Task Watching_ends_with_exit_0_on_a_signal(string signal)
    {
        await using var events = AqmpProcess.Start("events", _simulator.Address, "--name", "STOP");
        events.CloseInput();
        await _simulator.EmitWhenConnectedAsync("STOP");
        await events.WaitForStdoutLineAsync(line => line.Contains("\"STOP\"", StringComparison.Ordinal), "the STOP line (the tool is then surely watching)");

        await events.SignalAsync(signal);
        var result = await events.WaitForExitAsync();

        ToolAssert.Success(result);
    }

    [Test]
    public async Task A_missing_socket_exits_2_with_one_clear_line()
    {
        var missing = SimulatorFixture.TempSocketPath("missing");

        var result = await AqmpProcess.RunAsync("events", "unix:" + missing, "--count", "1");

        ToolAssert.ConnectionFailure(result, "Failed to establish connection");
    }

    [Test]
    public async Task Timeout_before_the_count_is_reached_exits_4_saying_how_many_events_came()
    {
        await using var events = AqmpProcess.Start("events", _simulator.Address, "--count", "2", "--timeout", "1.5");
        events.CloseInput();
        await _simulator.EmitWhenConnectedAsync("RESUME");

        var result = await events.WaitForExitAsync();

        ToolAssert.NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.TimedOut), result.ToString());
        Assert.That(result.StdoutLines, Has.Count.EqualTo(1).And.All.Contains("RESUME"), result.ToString());
        Assert.That(result.StderrLines, Is.EqualTo(new[] { "aqmp: 1 of 2 events within 1.5 s (--timeout)" }), result.ToString());
    }
}
