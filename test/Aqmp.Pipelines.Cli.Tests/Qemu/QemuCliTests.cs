using Aqmp.Pipelines.Testing;
using System.Text.Json;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests.Qemu;

/// <summary>
/// The tool against a real QEMU (<c>qemu-system-x86_64 -M none</c>), a fresh one per test.
/// Skipped when QEMU is not on PATH, unless <c>AQMP_REQUIRE_QEMU=1</c>, which makes that a failure.
/// </summary>
[TestFixture]
[Category("Qemu")]
public sealed class QemuCliTests
{
    private static readonly string Nl = Environment.NewLine;
    private QemuProcess? _qemu;

    private QemuProcess Qemu => _qemu ?? throw new InvalidOperationException("QEMU was not started.");

    [SetUp]
    public async Task StartQemuAsync() => _qemu = await QemuProcess.StartAsync();

    [TearDown]
    public async Task StopQemuAsync()
    {
        if (_qemu is { } qemu)
        {
            _qemu = null;
            if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed && qemu.StandardError.Length > 0)
            {
                await TestContext.Out.WriteLineAsync($"{qemu}: stderr:{Nl}{qemu.StandardError}");
            }

            await qemu.DisposeAsync();
        }
    }

    [Test]
    public async Task Execute_query_status_prints_QEMUs_status_and_exits_0()
    {
        var result = await AqmpProcess.RunAsync("execute", Qemu.Address, "query-status");

        ToolAssert.Success(result);
        using var status = JsonDocument.Parse(result.Stdout);
        Assert.That(status.RootElement.GetProperty("status").GetString(), Is.EqualTo("running"));
        Assert.That(status.RootElement.GetProperty("running").GetBoolean(), Is.True);
    }

    [Test]
    public async Task Execute_query_qmp_schema_prints_a_large_JSON_array_that_parses()
    {
        var result = await AqmpProcess.RunAsync("execute", Qemu.SocketPath, "query-qmp-schema");

        ToolAssert.Success(result);
        Assert.That(result.Stdout.Length, Is.GreaterThan(100_000), "the schema is large");
        using var schema = JsonDocument.Parse(result.Stdout);
        Assert.That(schema.RootElement.ValueKind, Is.EqualTo(JsonValueKind.Array));
        Assert.That(schema.RootElement.GetArrayLength(), Is.GreaterThan(500));
        var commands = schema.RootElement.EnumerateArray()
            .Where(e => e.GetProperty("meta-type").GetString() == "command")
            .Select(e => e.GetProperty("name").GetString())
            .ToList();
        Assert.That(commands, Does.Contain("query-status").And.Contain("quit").And.Contain("qmp_capabilities"));
    }

    [Test]
    public async Task Execute_an_unknown_command_exits_1_with_CommandNotFound()
    {
        var result = await AqmpProcess.RunAsync("execute", Qemu.Address, "nosuch");

        ToolAssert.FailsWith(result, ExitCode.QmpError, "error: CommandNotFound: The command nosuch has not been found");
    }

    [Test]
    public async Task Execute_passes_JSON_arguments_to_QEMU()
    {
        var result = await AqmpProcess.RunAsync("execute", Qemu.Address, "human-monitor-command", """{"command-line": "info version"}""");

        ToolAssert.Success(result);
        using var text = JsonDocument.Parse(result.Stdout);
        Assert.That(text.RootElement.GetString(), Does.StartWith("7."), result.ToString());
    }

    [Test]
    public async Task Shell_with_address_runs_lines_against_QEMU_and_prints_replies_and_events()
    {
        var input = $"query-status{Nl}stop{Nl}query-status{Nl}human-monitor-command command-line=\"info status\"{Nl}nosuch{Nl}cont{Nl}exit{Nl}";

        var result = await AqmpProcess.RunAsync(["shell", "-p", Qemu.Address], input);

        ToolAssert.NoStackTrace(result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCode.QmpError), "piped, and nosuch failed: " + result);
            Assert.That(result.StdoutLines.FirstOrDefault(), Does.StartWith("Connected to QEMU 7.").And.Contain("capabilities: [oob]"), result.ToString());
            Assert.That(result.Stdout, Does.Contain("\"status\": \"running\"").And.Contain("\"status\": \"paused\""), result.ToString());
            Assert.That(result.Stdout, Does.Contain("\"VM status: paused\\r\\n\""), result.ToString());
            Assert.That(result.StdoutLines.Where(l => l.StartsWith("event: ", StringComparison.Ordinal) && l.Contains("\"STOP\"", StringComparison.Ordinal)), Has.Exactly(1).Items, result.ToString());
            Assert.That(result.StderrLines, Is.EqualTo(new[] { "error: CommandNotFound: The command nosuch has not been found" }), result.ToString());
        }
    }

    [Test]
    public async Task Shell_H_sends_HMP_lines_and_prints_HMPs_text_as_it_is()
    {
        var result = await AqmpProcess.RunAsync(["shell", "-H", Qemu.SocketPath], $"info status{Nl}stop{Nl}info status{Nl}");

        ToolAssert.Success(result);
        var text = result.StdoutLines.Where(l => !l.StartsWith("event: ", StringComparison.Ordinal)).Skip(2).ToList();
        Assert.That(text, Is.EqualTo(new[] { "VM status: running", "VM status: paused" }), result.ToString());
    }

    [Test]
    public async Task Shell_quit_with_more_lines_piped_after_it_exits_0_at_once_without_Broken_pipe()
    {
        var result = await AqmpProcess.RunAsync(["shell", Qemu.Address], $"quit{Nl}query-status{Nl}");

        ToolAssert.Success(result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.StdoutLines, Does.Contain("{}"), result.ToString());
            Assert.That(result.StdoutLines.Where(l => l.StartsWith("event: ", StringComparison.Ordinal) && l.Contains("SHUTDOWN", StringComparison.Ordinal)), Has.Exactly(1).Items, result.ToString());
            Assert.That(result.StdoutLines.LastOrDefault(), Is.EqualTo("The server quit: session closed."), result.ToString());
            Assert.That(result.Stderr, Is.Empty, result.ToString());
        }

        Assert.That(await Qemu.WaitForExitAsync(), Is.Zero);
    }

    [Test]
    public async Task Shell_waiting_for_input_notices_QEMU_killed_and_exits_2_at_once()
    {
        await using var shell = AqmpProcess.Start("shell", Qemu.Address);
        await shell.WaitForConnectedAsync();

        Qemu.Process.Kill();
        var result = await shell.WaitForExitAsync(within: TimeSpan.FromSeconds(5));

        ToolAssert.ConnectionLost(result);
    }

    [Test]
    public async Task Execute_quit_ends_QEMU_and_exits_0()
    {
        var result = await AqmpProcess.RunAsync("execute", Qemu.Address, "quit");

        ToolAssert.Success(result);
        Assert.That(result.Stdout.Trim(), Is.EqualTo("{}"));
        Assert.That(await Qemu.WaitForExitAsync(), Is.Zero, "QEMU exits cleanly on quit");
    }
}
