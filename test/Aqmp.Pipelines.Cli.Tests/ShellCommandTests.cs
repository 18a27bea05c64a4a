using System.Text.Json.Nodes;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary><c>aqmp shell</c> with piped stdin: against its built-in simulator and against an in-process one.</summary>
[TestFixture]
public sealed class ShellCommandTests
{
    private static readonly string Nl = Environment.NewLine;

    /// <summary>Shell lines and the arguments the command must receive, as JSON.</summary>
    private static readonly (string Line, string Expected)[] KeyValueLines =
    [
        ("n=1 f=-2.5 big=1048576", """{"n": 1, "f": -2.5, "big": 1048576}"""),
        ("on=true off=false nothing=null", """{"on": true, "off": false, "nothing": null}"""),
        ("s=\"a b  c\" q=\"say \\\"hi\\\"\"", """{"s": "a b  c", "q": "say \"hi\""}"""),
        ("id=disk0 path=/tmp/x.img expr=x=y", """{"id": "disk0", "path": "/tmp/x.img", "expr": "x=y"}"""),
        ("obj={\"k\": [1, \"two words\"]} arr=[1, 2, 3] empty={}", """{"obj": {"k": [1, "two words"]}, "arr": [1, 2, 3], "empty": {}}"""),
        ("a.b=1 a.c.d=x a.c.e=true top=0", """{"a": {"b": 1, "c": {"d": "x", "e": true}}, "top": 0}"""),
        ("num=\"42\"", """{"num": "42"}"""),
        ("command-line='info status' n='42' q='say \\'hi\\'' d='a \"b\"'", """{"command-line": "info status", "n": "42", "q": "say 'hi'", "d": "a \"b\""}"""),
    ];

    [Test]
    public async Task Shell_without_address_starts_the_built_in_simulator_and_runs_piped_lines()
    {
        const string Lines = """
            query-status
            stop
            nosuch
            history
            !1
            {"execute":"query-version"}
            quit

            """;

        await using var shell = AqmpProcess.Start("shell", "-p");
        await shell.WriteInputAsync(Lines);
        shell.CloseInput();
        var result = await shell.WaitForExitAsync();

        ToolAssert.NoStackTrace(result);
        var stdout = result.StdoutLines;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCode.QmpError), "piped: nosuch failed, so the exit code says so; " + result);
            Assert.That(stdout.FirstOrDefault(), Does.StartWith("No ADDRESS given: started the built-in QMP simulator at unix:"), result.ToString());
            Assert.That(stdout.ElementAtOrDefault(1), Is.EqualTo("Connected to QEMU 7.2.22 (aqmp-simulator); capabilities: [oob]"), result.ToString());

            // query-status, pretty-printed; then again through !1, after stop.
            Assert.That(result.Stdout, Does.Contain($"{{{Nl}  \"status\": \"running\",{Nl}  \"singlestep\": false,{Nl}  \"running\": true{Nl}}}"), result.ToString());
            Assert.That(result.Stdout, Does.Contain($"{{{Nl}  \"status\": \"paused\",{Nl}  \"singlestep\": false,{Nl}  \"running\": false{Nl}}}"), result.ToString());
            Assert.That(stdout, Does.Contain("{}"), "stop's empty reply");
            Assert.That(stdout.Where(l => l.StartsWith("event: ", StringComparison.Ordinal) && l.Contains("\"event\": \"STOP\"", StringComparison.Ordinal)), Has.Exactly(1).Items, result.ToString());

            // history: the three lines so far, numbered; then !1 echoes the line it repeats.
            // (Events are printed as they arrive, so one may fall between these lines: left out here.)
            var history = stdout.Where(l => !l.StartsWith("event: ", StringComparison.Ordinal)).SkipWhile(l => l != "   1  query-status").Take(4).ToList();
            Assert.That(history, Is.EqualTo(new[] { "   1  query-status", "   2  stop", "   3  nosuch", "query-status" }), result.ToString());

            // The raw JSON command's reply.
            Assert.That(result.Stdout, Does.Contain($"  \"package\": \"aqmp-simulator\"{Nl}"), result.ToString());
            Assert.That(result.Stdout, Does.Contain("\"major\": 7"), result.ToString());

            Assert.That(result.StderrLines, Is.EqualTo(new[] { "error: CommandNotFound: The command nosuch has not been found" }), result.ToString());
        }

        var socket = Path.Combine(Path.GetTempPath(), $"aqmp-shell-{shell.Id}.sock");
        Assert.That(File.Exists(socket), Is.False, $"the built-in simulator's socket {socket} is removed on exit");
    }

    [Test]
    public async Task Shell_interrupted_while_waiting_for_the_greeting_says_so_and_exits_130()
    {
        var path = SimulatorFixture.TempSocketPath("silent");
        using var silent = await Aqmp.Pipelines.Transports.SocketListener.BindAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(path)).AsTask().Bounded();
        await using var shell = AqmpProcess.Start("shell", "--connect-timeout", "60", "unix:" + path);
        await using var connection = await silent.AcceptAsync().AsTask().Bounded();

        await shell.SignalAsync("INT");
        var result = await shell.WaitForExitAsync();

        Assert.That(result.ExitCode, Is.EqualTo(130), result.ToString());
        Assert.That(result.Stderr, Does.Contain($"interrupted while connecting to unix:{path} (no QMP greeting yet)"), result.ToString());
    }

    [Test]
    public async Task Shell_with_address_talks_to_that_server_and_ends_with_exit_0_at_the_end_of_input()
    {
        await using var simulator = await SimulatorFixture.StartAsync();

        var result = await AqmpProcess.RunAsync(["shell", "-p", simulator.Address], $"query-status{Nl}stop{Nl}{SimulatorFixture.EchoCommand} k=v{Nl}");

        ToolAssert.Success(result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.StdoutLines.FirstOrDefault(), Is.EqualTo("Connected to QEMU 7.2.22 (aqmp-simulator); capabilities: [oob]"), result.ToString());
            Assert.That(result.Stdout, Does.Not.Contain("built-in"), result.ToString());
            Assert.That(result.Stdout, Does.Contain("\"status\": \"running\""), result.ToString());
            Assert.That(result.StdoutLines.Where(l => l.StartsWith("event: ", StringComparison.Ordinal) && l.Contains("STOP", StringComparison.Ordinal)), Has.Exactly(1).Items, result.ToString());
            Assert.That(simulator.Simulator.IsRunning, Is.False, "stop reached this simulator");
            Assert.That(simulator.Echoed, Is.EqualTo(new[] { """{"k":"v"}""" }));
            Assert.That(simulator.Simulator.SessionsServed, Is.EqualTo(1));
        }
    }

    [Test]
    public async Task Shell_key_value_arguments_are_JSON_where_they_parse_strings_otherwise_and_dotted_keys_nest()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var input = string.Concat(KeyValueLines.Select(c => $"{SimulatorFixture.EchoCommand} {c.Line}{Nl}"))
            + "{\"execute\": \"" + SimulatorFixture.EchoCommand + "\", \"arguments\": {\"raw\": [1, {\"x\": null}]}}" + Nl
            + "exit" + Nl;

        var result = await AqmpProcess.RunAsync(["shell", "-p", simulator.Address], input);

        ToolAssert.Success(result);
        var received = simulator.Echoed.ToList();
        var expected = KeyValueLines.Append((Line: "raw JSON", Expected: """{"raw": [1, {"x": null}]}""")).ToList();
        Assert.That(received, Has.Count.EqualTo(expected.Count), result.ToString());
        using (Assert.EnterMultipleScope())
        {
            for (var i = 0; i < expected.Count; i++)
            {
                Assert.That(JsonNode.DeepEquals(JsonNode.Parse(received[i]), JsonNode.Parse(expected[i].Expected)), Is.True, $"line '{expected[i].Line}': expected {expected[i].Expected}, received {received[i]}");
            }
        }

        // The replies echo the arguments, pretty-printed.
        Assert.That(result.Stdout, Does.Contain($"  \"s\": \"a b  c\",{Nl}"), result.ToString());
    }

    [Test]
    public async Task Shell_reports_each_malformed_line_on_stderr_and_goes_on()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        string[] bad =
        [
            $"{SimulatorFixture.EchoCommand} a.b=1 a=2",
            $"{SimulatorFixture.EchoCommand} a=2 a.b=1",
            $"{SimulatorFixture.EchoCommand} novalue",
            $"{SimulatorFixture.EchoCommand} s=\"unterminated",
            $"{SimulatorFixture.EchoCommand} list=[1, 2",
            "x=1",
            """{"return": {}}""",
            """{"execute": """,
            "!9",
        ];
        var input = string.Concat(bad.Select(l => l + Nl)) + $"{SimulatorFixture.EchoCommand} ok=1{Nl}exit{Nl}";

        var result = await AqmpProcess.RunAsync(["shell", "-p", simulator.Address], input);

        ToolAssert.NoStackTrace(result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCode.QmpError), result.ToString());
            Assert.That(result.StderrLines, Has.Count.EqualTo(bad.Length), result.ToString());
            Assert.That(result.StderrLines.Take(bad.Length - 1), Has.All.StartWith("error: "), result.ToString());
            Assert.That(result.StderrLines.LastOrDefault(), Is.EqualTo("no history line '9'"), result.ToString());
            Assert.That(simulator.Echoed, Is.EqualTo(new[] { """{"ok":1}""" }), "only the good line reached the server");
        }
    }

    [Test]
    public async Task Shell_exits_2_when_the_server_goes_away()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        await using var shell = AqmpProcess.Start("shell", "-p", simulator.Address);
        await shell.WaitForStdoutLineAsync(l => l.StartsWith("Connected to QEMU", StringComparison.Ordinal), "'Connected to QEMU ...'");

        await simulator.Simulator.StopAsync().Bounded();
        await shell.WriteInputAsync($"query-status{Nl}");
        shell.CloseInput();
        var result = await shell.WaitForExitAsync();

        ToolAssert.NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.ConnectionFailed), result.ToString());
        Assert.That(result.Stderr, Does.Contain("connection lost"), result.ToString());
    }

    [TestCase("TERM")]
    [TestCase("INT")]
    public async Task Shell_waiting_for_input_ends_with_exit_0_on_a_signal(string signal)
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        await using var shell = AqmpProcess.Start("shell", "-p", simulator.Address);
        await shell.WaitForStdoutLineAsync(l => l.StartsWith("Connected to QEMU", StringComparison.Ordinal), "'Connected to QEMU ...'");

        // One command, then stdin stays open: once the reply is printed the shell goes back to
        // reading its next line and blocks there, as at an interactive prompt. The pause makes sure
        // the signal arrives while it is blocked (not in the instant before it starts reading).
        await shell.WriteInputAsync($"query-status{Nl}");
        await shell.WaitForStdoutLineAsync(l => l.Contains("\"running\": true", StringComparison.Ordinal), "the query-status reply");
        await Task.Delay(300);
        await shell.SignalAsync(signal);
        var result = await shell.WaitForExitAsync(within: TimeSpan.FromSeconds(3));

        ToolAssert.Success(result);
    }

    [Test]
    public async Task Shell_against_a_missing_socket_exits_2_with_one_clear_line()
    {
        var missing = SimulatorFixture.TempSocketPath("missing");

        var result = await AqmpProcess.RunAsync(["shell", "unix:" + missing], input: "query-status" + Nl);

        ToolAssert.ConnectionFailure(result, "Failed to establish connection");
    }
}
