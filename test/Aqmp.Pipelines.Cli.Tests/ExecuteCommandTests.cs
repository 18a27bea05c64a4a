using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary><c>aqmp execute</c> against the in-process simulator.</summary>
[TestFixture]
public sealed class ExecuteCommandTests
{
    private SimulatorFixture _simulator = null!;

    [SetUp]
    public async Task StartSimulatorAsync() => _simulator = await SimulatorFixture.StartAsync();

    [TearDown]
    public async Task StopSimulatorAsync() => await _simulator.DisposeAsync();

    [Test]
    public async Task Query_status_prints_the_return_value_as_indented_JSON_and_exits_0()
    {
        var result = await AqmpProcess.RunAsync("execute", _simulator.Address, "query-status");

        ToolAssert.Success(result);
        using var status = JsonDocument.Parse(result.Stdout);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(status.RootElement.GetProperty("status").GetString(), Is.EqualTo("running"));
            Assert.That(status.RootElement.GetProperty("running").GetBoolean(), Is.True);
            Assert.That(status.RootElement.GetProperty("singlestep").GetBoolean(), Is.False);
            Assert.That(result.StdoutLines, Does.Contain("  \"status\": \"running\","), "pretty-printed, one member a line");
        }
    }

    [Test]
    public async Task An_address_given_as_a_plain_path_works_too()
    {
        var result = await AqmpProcess.RunAsync("execute", _simulator.Path, "query-version");

        ToolAssert.Success(result);
        using var version = JsonDocument.Parse(result.Stdout);
        Assert.That(version.RootElement.GetProperty("qemu").GetProperty("major").GetInt32(), Is.EqualTo(7));
        Assert.That(version.RootElement.GetProperty("package").GetString(), Is.EqualTo("aqmp-simulator"));
    }

    [Test]
    public async Task A_command_that_returns_nothing_prints_an_empty_object_and_takes_effect()
    {
        var result = await AqmpProcess.RunAsync("execute", _simulator.Address, "stop");

        ToolAssert.Success(result);
        Assert.That(result.Stdout.Trim(), Is.EqualTo("{}"));
        Assert.That(_simulator.Simulator.IsRunning, Is.False);
    }

    [Test]
    public async Task An_unknown_command_prints_error_CommandNotFound_on_stderr_and_exits_1()
    {
        var result = await AqmpProcess.RunAsync("execute", _simulator.Address, "nosuch");

        ToolAssert.NoStackTrace(result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCode.QmpError), result.ToString());
            Assert.That(result.StderrLines, Is.EqualTo(new[] { "error: CommandNotFound: The command nosuch has not been found" }), result.ToString());
            Assert.That(result.Stdout, Is.Empty, result.ToString());
        }
    }

    [Test]
    public async Task A_QMP_error_prints_its_class_and_description_and_exits_1()
    {
        var result = await AqmpProcess.RunAsync("execute", _simulator.Address, SimulatorFixture.FailCommand);

        ToolAssert.NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.QmpError), result.ToString());
        Assert.That(result.StderrLines, Is.EqualTo(new[] { "error: DeviceNotFound: Device 'nosuch0' not found" }), result.ToString());
    }

    [Test]
    public async Task JSON_arguments_are_passed_to_the_command_unchanged()
    {
        const string Arguments = """{"n": 1, "f": -2.5, "flags": [true, false, null], "nested": {"s": "héllo \"q\" <tag> & ünïcode ✓"}}""";

        var result = await AqmpProcess.RunAsync("execute", _simulator.Address, SimulatorFixture.EchoCommand, Arguments);

        ToolAssert.Success(result);
        Assert.That(_simulator.Echoed, Has.Count.EqualTo(1));
        _simulator.Echoed.TryPeek(out var received);
        Assert.That(JsonNode.DeepEquals(JsonNode.Parse(received!), JsonNode.Parse(Arguments)), Is.True, $"received {received}");
        Assert.That(JsonNode.DeepEquals(JsonNode.Parse(result.Stdout), JsonNode.Parse(Arguments)), Is.True, $"printed {result.Stdout}");
    }

    [Test]
    public async Task Without_JSON_arguments_the_command_gets_no_arguments()
    {
        var result = await AqmpProcess.RunAsync("execute", _simulator.Address, SimulatorFixture.EchoCommand);

        ToolAssert.Success(result);
        Assert.That(_simulator.Echoed, Is.EqualTo(new[] { "null" }));
    }

    [TestCase("{bad")]
    [TestCase("[1, 2]")]
    [TestCase("42")]
    [TestCase("\"text\"")]
    [TestCase("{\"a\": 1} trailing")]
    [TestCase("")]
    public async Task Malformed_JSON_arguments_are_a_usage_error_and_nothing_is_sent(string arguments)
    {
        var result = await AqmpProcess.RunAsync("execute", _simulator.Address, SimulatorFixture.EchoCommand, arguments);

        ToolAssert.UsageError(result, "JSON-ARGUMENTS must be a JSON object");
        Assert.That(_simulator.Simulator.SessionsServed, Is.Zero, "the tool checks its arguments before connecting");
    }

    [TestCase("TERM")]
    [TestCase("INT")]
    public async Task An_execute_interrupted_before_its_reply_does_not_exit_0(string signal)
    {
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _simulator.Simulator.Handle("hang", async (_, token) =>
        {
            received.TrySetResult();
            await Task.Delay(Timeout.Infinite, token);
            return null;
        });
        await using var execute = AqmpProcess.Start("execute", _simulator.Address, "hang");
        execute.CloseInput();
        await received.Task.Bounded();

        await execute.SignalAsync(signal);
        var result = await execute.WaitForExitAsync();

        ToolAssert.NoStackTrace(result);
        Assert.That(result.ExitCode, Is.Not.Zero, $"the command never returned, so its success must not be reported: {result}");
        Assert.That(result.Stdout, Is.Empty, result.ToString());
    }

    [TestCase("unix:")]
    [TestCase("")]
    public async Task A_missing_socket_exits_2_with_one_clear_line(string prefix)
    {
        var missing = SimulatorFixture.TempSocketPath("missing");

        var result = await AqmpProcess.RunAsync("execute", prefix + missing, "query-status");

        ToolAssert.ConnectionFailure(result, "Failed to establish connection");
        Assert.That(result.Stderr, Does.Contain($"No Unix socket at '{missing}': there is no such file."));
        Assert.That(result.Stderr, Does.Not.Contain("Cannot assign requested address"));
    }

    [Test]
    public async Task A_refused_TCP_connection_exits_2_with_one_clear_line()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var result = await AqmpProcess.RunAsync("execute", $"127.0.0.1:{port}", "query-status");

        ToolAssert.ConnectionFailure(result, "Failed to establish connection");
    }

    [Test]
    public async Task A_server_that_never_greets_exits_3_after_5_seconds_saying_another_client_may_hold_the_monitor()
    {
        using var silent = SilentListener(out var port);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = await AqmpProcess.RunAsync("execute", $"127.0.0.1:{port}", "query-status");

        ToolAssert.NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.ConnectTimedOut), result.ToString());
        Assert.That(result.StderrLines, Is.EqualTo(new[] { "aqmp: error: no QMP greeting within 5 s: another client may hold the monitor (QEMU serves one client per monitor)" }), result.ToString());
        Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(5)));
    }

    [TestCase("execute", "query-status")]
    [TestCase("events")]
    public async Task Connect_timeout_bounds_the_wait_for_the_greeting_of_every_client_subcommand(params string[] subcommand)
    {
        using var silent = SilentListener(out var port);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = await AqmpProcess.RunAsync([subcommand[0], "--connect-timeout", "0.5", $"127.0.0.1:{port}", .. subcommand.Skip(1)], input: null);

        ToolAssert.NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.ConnectTimedOut), result.ToString());
        Assert.That(result.StderrLines, Is.EqualTo(new[] { "aqmp: error: no QMP greeting within 0.5 s: another client may hold the monitor (QEMU serves one client per monitor)" }), result.ToString());
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(4)));
    }

    [Test]
    public async Task Timeout_ends_an_execute_without_a_reply_with_exit_4_naming_the_command()
    {
        _simulator.Simulator.Handle("hang", async (_, token) =>
        {
            await Task.Delay(Timeout.Infinite, token);
            return null;
        });

        var result = await AqmpProcess.RunAsync("execute", "--timeout", "0.5", _simulator.Address, "hang");

        ToolAssert.FailsWith(result, ExitCode.TimedOut, "aqmp: no reply to hang within 0.5 s (--timeout)");
    }

    [Test]
    public async Task Ctrl_C_while_waiting_for_the_greeting_says_so_and_that_the_command_was_not_sent()
    {
        using var silent = SilentListener(out var port);
        await using var execute = AqmpProcess.Start("execute", $"127.0.0.1:{port}", "query-status");
        execute.CloseInput();
        await Task.Delay(500);

        await execute.SignalAsync("INT");
        var result = await execute.WaitForExitAsync();

        ToolAssert.NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.Interrupted), result.ToString());
        Assert.That(result.StderrLines, Is.EqualTo(new[] { $"aqmp: interrupted while connecting to 127.0.0.1:{port} (no QMP greeting yet); query-status was not sent" }), result.ToString());
    }

    /// <summary>Listening but never accepting: the kernel completes the connection, and nothing is ever said.</summary>
    private static Socket SilentListener(out int port)
    {
        var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        silent.Listen(1);
        port = ((IPEndPoint)silent.LocalEndPoint!).Port;
        return silent;
    }
}
