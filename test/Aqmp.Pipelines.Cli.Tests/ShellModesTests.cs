using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary>qmp-shell's flags and modes in <c>aqmp shell</c>, with piped lines against an in-process server.</summary>
[TestFixture]
public sealed class ShellModesTests : TempDirectoryTest
{
    private static readonly string Nl = Environment.NewLine;

    [Test]
    public async Task Replies_are_one_line_of_JSON_and_p_indents_them()
    {
        await using var simulator = await SimulatorFixture.StartAsync();

        var compact = await AqmpProcess.RunAsync(["shell", simulator.Address], $"query-status{Nl}");
        var pretty = await AqmpProcess.RunAsync(["shell", "-p", simulator.Address], $"query-status{Nl}");

        ToolAssert.Success(compact);
        ToolAssert.Success(pretty);
        Assert.That(compact.StdoutLines, Does.Contain("""{"status":"running","singlestep":false,"running":true}"""), compact.ToString());
        Assert.That(pretty.Stdout, Does.Contain($"{{{Nl}  \"status\": \"running\",{Nl}"), pretty.ToString());
    }

    [Test]
    public async Task Lines_after_transaction_open_paren_are_not_sent_until_the_closing_paren_sends_one_transaction()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var log = Path.Combine(TempDirectory, "qmp.log");
        var input = string.Join(Nl, "transaction(", "block-dirty-bitmap-add node=drive0 name=bitmap0", "abort", ")", "transaction( abort )", "") ;

        var result = await AqmpProcess.RunAsync(["shell", "-l", log, simulator.Address], input);

        ToolAssert.NoStackTrace(result);
        var sent = File.ReadAllLines(log).Select(l => JsonNode.Parse(l)!).Where(m => m["execute"] is not null).Select(m => { m.AsObject().Remove("id"); return m.ToJsonString(); }).ToList();
        Assert.That(sent, Is.EqualTo(new[]
        {
            """{"execute":"qmp_capabilities"}""",
            """{"execute":"transaction","arguments":{"actions":[{"type":"block-dirty-bitmap-add","data":{"node":"drive0","name":"bitmap0"}},{"type":"abort","data":{}}]}}""",
            """{"execute":"transaction","arguments":{"actions":[{"type":"abort","data":{}}]}}""",
        }), result.ToString());
    }

    [Test]
    public async Task Text_after_the_closing_paren_is_an_error_and_sends_nothing()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var log = Path.Combine(TempDirectory, "qmp.log");

        var result = await AqmpProcess.RunAsync(["shell", "--logfile", log, simulator.Address], $"transaction({Nl}abort{Nl}) query-status{Nl}");

        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.QmpError), result.ToString());
        Assert.That(result.StderrLines, Is.EqualTo(new[] { "error: unexpected input after the ')' that closes the transaction" }), result.ToString());
        Assert.That(File.ReadAllLines(log).Count(l => l.Contains("\"execute\"", StringComparison.Ordinal)), Is.EqualTo(1), "only qmp_capabilities");
    }

    [Test]
    public async Task The_log_file_gets_every_message_sent_and_received_as_one_JSON_line_each()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var log = Path.Combine(TempDirectory, "qmp.log");

        var result = await AqmpProcess.RunAsync(["shell", "-l" + log, simulator.Address], $"stop{Nl}query-status{Nl}quit{Nl}");

        ToolAssert.Success(result);
        var lines = File.ReadAllLines(log);
        var kinds = lines.Select(l => JsonNode.Parse(l)!.AsObject()).Select(m => m.ContainsKey("event") ? "event" : m.First().Key).ToList();
        Assert.That(kinds.Take(3), Is.EqualTo(new[] { "QMP", "execute", "return" }), string.Join(Nl, lines));
        Assert.That(kinds.Count(k => k == "execute"), Is.EqualTo(4), string.Join(Nl, lines));
        Assert.That(kinds.Count(k => k == "return"), Is.EqualTo(4), string.Join(Nl, lines));
        Assert.That(kinds, Does.Contain("event"), "STOP and SHUTDOWN are logged too");
    }

    [Test]
    public async Task Verbose_prints_each_command_before_its_reply_and_help_is_answered_by_the_shell()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var log = Path.Combine(TempDirectory, "qmp.log");

        var result = await AqmpProcess.RunAsync(["shell", "-v", "-l", log, simulator.Address], $"help{Nl}{SimulatorFixture.EchoCommand} k='a b'{Nl}");

        ToolAssert.Success(result);
        var echo = result.StdoutLines.ToList().IndexOf("{\"execute\":\"" + SimulatorFixture.EchoCommand + "\",\"arguments\":{\"k\":\"a b\"}}");
        Assert.That(echo, Is.GreaterThan(0), result.ToString());
        Assert.That(result.StdoutLines.ElementAtOrDefault(echo + 1), Is.EqualTo("""{"k":"a b"}"""), result.ToString());
        Assert.That(result.Stdout, Does.Contain("transaction("), "help tells the syntax");
        Assert.That(File.ReadAllText(log), Does.Not.Contain("help"), "help is not sent");
    }

    [Test]
    public async Task QMP_SOCKET_names_the_server_when_no_address_is_given()
    {
        await using var simulator = await SimulatorFixture.StartAsync();

        var result = await AqmpProcess.RunAsync(["shell"], $"{SimulatorFixture.EchoCommand} via=env{Nl}", environment: new Dictionary<string, string> { ["QMP_SOCKET"] = simulator.Path });

        ToolAssert.Success(result);
        Assert.That(result.Stdout, Does.Not.Contain("built-in"), result.ToString());
        Assert.That(simulator.Echoed, Is.EqualTo(new[] { """{"via":"env"}""" }));
    }

    [Test]
    public async Task N_skips_the_greeting_and_qmp_capabilities_for_a_guest_agent()
    {
        // A stand-in for qemu-ga: no greeting, and each command answered with an empty return.
        var path = SimulatorFixture.TempSocketPath("ga");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        var received = new List<string>();
        var agent = Task.Run(async () =>
        {
            using var connection = await listener.AcceptAsync();
            await using var stream = new NetworkStream(connection, ownsSocket: false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            while (await reader.ReadLineAsync() is { } line)
            {
                received.Add(line);
                var id = JsonNode.Parse(line)!["id"]!.ToJsonString();
                await stream.WriteAsync(Encoding.UTF8.GetBytes($$"""{"return": {}, "id": {{id}}}""" + "\n"));
            }
        });

        try
        {
            var result = await AqmpProcess.RunAsync(["shell", "-N", path], $"guest-ping{Nl}");

            ToolAssert.Success(result);
            Assert.That(result.StdoutLines, Does.Contain("{}"), result.ToString());
            await agent.Bounded();
            Assert.That(received.Select(l => JsonNode.Parse(l)!["execute"]!.GetValue<string>()), Is.EqualTo(new[] { "guest-ping" }));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
