using System.Text.Json;
using Aqmp.Pipelines.Cli.Commands;
using Aqmp.Pipelines.Cli.Tests.Support;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Client;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary><c>aqmp serve</c>: the simulator as a separate process.</summary>
[TestFixture]
public sealed class ServeCommandTests
{
    private string _path = null!;

    private string Address => "unix:" + _path;

    [SetUp]
    public void PickSocketPath() => _path = SimulatorFixture.TempSocketPath("serve");

    [TearDown]
    public void RemoveSocketPath() => File.Delete(_path);

    [Test]
    public async Task Serve_prints_that_it_serves_answers_a_client_and_exits_0_when_the_client_sends_quit()
    {
        await using var serve = await StartServeAsync();

        await using (var client = new QmpClient())
        {
            await client.ConnectAsync(Address).Bounded();
            Assert.That(client.Greeting!.Version.ToString(), Does.StartWith("7.2.22"));
            var status = await client.ExecuteAsync("query-status").Bounded();
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("running"));
            await client.ExecuteAsync("quit").Bounded();
            await client.DisconnectAsync().Bounded();
        }

        var result = await serve.WaitForExitAsync();

        ToolAssert.Success(result);
        Assert.That(result.StdoutLines, Does.Contain("simulator stopped: a client sent 'quit'"), result.ToString());
        Assert.That(File.Exists(_path), Is.False, "the socket file is removed");
    }

    [Test]
    public async Task Serve_answers_the_execute_of_other_aqmp_processes_one_after_the_other()
    {
        await using var serve = await StartServeAsync();

        var stop = await AqmpProcess.RunAsync("execute", Address, "stop");
        var status = await AqmpProcess.RunAsync("execute", Address, "query-status");
        var quit = await AqmpProcess.RunAsync("execute", Address, "quit");
        var result = await serve.WaitForExitAsync();

        ToolAssert.Success(stop);
        ToolAssert.Success(status);
        using var document = JsonDocument.Parse(status.Stdout);
        Assert.That(document.RootElement.GetProperty("status").GetString(), Is.EqualTo("paused"), "the second client sees what the first did");
        ToolAssert.Success(quit);
        ToolAssert.Success(result);
    }

    [Test]
    public async Task Serve_with_max_clients_50_serves_50_clients_at_once_and_a_stop_from_one_reaches_them_all()
    {
        await using var serve = await StartServeAsync("--max-clients", "50");
        var clients = new List<QmpClient>();
        try
        {
            // One client that never negotiates holds a place but no longer blocks the others.
            using var idle = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            await idle.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(_path)).Bounded();
            clients.AddRange(await Task.WhenAll(Enumerable.Range(0, 49).Select(async _ =>
            {
                var client = new QmpClient();
                await client.ConnectAsync(Address).Bounded();
                return client;
            })));
            var listeners = clients.Select(client => client.Listen("STOP")).ToList();

            await clients[0].ExecuteAsync("stop").Bounded();

            var events = await Task.WhenAll(listeners.Select(listener => listener.ReadAsync().AsTask())).Bounded();
            Assert.That(events.Select(e => e.Name), Is.All.EqualTo("STOP"), "every one of the 49 negotiated clients");
            var statuses = await Task.WhenAll(clients.Select(client => client.ExecuteAsync("query-status"))).Bounded();
            Assert.That(statuses.Select(s => s.GetProperty("status").GetString()), Is.All.EqualTo("paused"), "one machine");
            listeners.ForEach(listener => listener.Dispose());
            await clients[^1].ExecuteAsync("quit").Bounded();
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }

        var result = await serve.WaitForExitAsync();
        ToolAssert.Success(result);
        Assert.That(result.StdoutLines, Does.Contain("simulator stopped: a client sent 'quit'"), result.ToString());
    }

    [Test]
    public async Task Serve_disconnects_a_client_that_does_not_negotiate_within_the_negotiation_timeout_and_serves_the_next()
    {
        await using var serve = await StartServeAsync("--negotiation-timeout", "1");
        using var idle = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await idle.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(_path)).Bounded();
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var buffer = new byte[4096];
        while (await idle.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None).Bounded() > 0)
        {
            // The greeting, then nothing until the simulator closes the connection.
        }

        Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(0.9)), "the idle client is disconnected after the timeout, not before");
        var status = await AqmpProcess.RunAsync("execute", Address, "query-status");
        ToolAssert.Success(status);
    }

    [Test]
    public async Task Serve_replaces_a_socket_file_left_by_a_server_that_did_not_stop_cleanly()
    {
        await Aqmp.Pipelines.Testing.StaleSocketFile.LeaveAtAsync(_path);
        await using var serve = await StartServeAsync();

        var status = await AqmpProcess.RunAsync("execute", Address, "query-status");
        ToolAssert.Success(status);
    }

    [Test]
    public async Task Serve_on_the_socket_of_a_running_server_exits_2_saying_a_server_is_listening_and_leaves_it()
    {
        await using var first = await StartServeAsync();

        var second = await AqmpProcess.RunAsync("serve", Address);

        Assert.That(second.ExitCode, Is.EqualTo(2), second.ToString());
        Assert.That(second.Stderr, Does.Contain(_path).And.Contain("a server is listening on it"), second.ToString());
        var status = await AqmpProcess.RunAsync("execute", Address, "query-status");
        ToolAssert.Success(status);
    }

    [Test]
    public async Task Serve_with_a_negotiation_timeout_that_is_not_a_positive_number_is_a_usage_error()
    {
        var result = await AqmpProcess.RunAsync("serve", "--negotiation-timeout", "0", Address);

        Assert.That(result.ExitCode, Is.EqualTo(64), result.ToString());
        Assert.That(result.Stderr, Does.Contain("--negotiation-timeout"), result.ToString());
    }

    [TestCase("TERM")]
    [TestCase("INT")]
    [TestCase("HUP")]
    [TestCase("QUIT")]
    public async Task Serve_stops_with_exit_0_on_a_signal_and_removes_its_socket(string signal)
    {
        await using var serve = await StartServeAsync();

        await serve.SignalAsync(signal);
        var result = await serve.WaitForExitAsync();

        ToolAssert.Success(result);
        Assert.That(result.StdoutLines, Does.Contain("simulator stopped"), result.ToString());
        Assert.That(result.Stdout, Does.Not.Contain("quit"), "no client sent 'quit'");
        Assert.That(File.Exists(_path), Is.False, "the socket file is removed");
    }

    [Test]
    public async Task Serve_on_a_path_holding_a_regular_file_exits_2_with_one_line_naming_the_path()
    {
        await File.WriteAllTextAsync(_path, "not a socket");

        var result = await AqmpProcess.RunAsync("serve", Address);

        ToolAssert.ConnectionFailure(result, OperatingSystem.IsLinux() ? $"'{_path}': it exists and is not a socket" : "in use");
        Assert.That(File.ReadAllText(_path), Is.EqualTo("not a socket"), "an existing file is never deleted");
    }

    [Test]
    public async Task Serve_whose_simulator_fails_reports_the_error_on_stderr_and_exits_2()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var failed = Task.FromException<QmpSimulatorStopReason>(new InvalidOperationException("accept broke"));

        var exitCode = await ServeCommand.ReportStopAsync(failed, output, error, CancellationToken.None);

        Assert.That(exitCode, Is.EqualTo(ExitCode.ConnectionFailed));
        Assert.That(error.ToString(), Is.EqualTo("aqmp: error: the simulator stopped accepting clients: accept broke" + Environment.NewLine));
        Assert.That(output.ToString(), Is.Empty, "it does not claim the simulator stopped normally");
    }

    [TestCase(QmpSimulatorStopReason.Quit, "simulator stopped: a client sent 'quit'")]
    [TestCase(QmpSimulatorStopReason.Stopped, "simulator stopped")]
    public async Task Serve_reports_why_its_simulator_stopped_and_exits_0(QmpSimulatorStopReason reason, string line)
    {
        var output = new StringWriter();
        var error = new StringWriter();

        var exitCode = await ServeCommand.ReportStopAsync(Task.FromResult(reason), output, error, CancellationToken.None);

        Assert.That(exitCode, Is.EqualTo(ExitCode.Success));
        Assert.That(output.ToString(), Is.EqualTo(line + Environment.NewLine));
        Assert.That(error.ToString(), Is.Empty);
    }

    private async Task<AqmpProcess> StartServeAsync(params string[] options)
    {
        var serve = AqmpProcess.Start(["serve", .. options, Address]);
        serve.CloseInput();
        try
        {
            var line = await serve.WaitForStdoutLineAsync(l => l.StartsWith("serving the QMP simulator on ", StringComparison.Ordinal), "'serving the QMP simulator on ...'");
            Assert.That(line, Does.Contain(_path));
            return serve;
        }
        catch
        {
            await serve.DisposeAsync();
            throw;
        }
    }
}
