using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary>How <c>aqmp shell</c> ends: at once when the session does, with an exit code that says how.</summary>
[TestFixture]
public sealed class ShellEndsTests
{
    private static readonly string Nl = Environment.NewLine;

    [Test]
    public async Task After_quit_the_shell_says_the_server_quit_and_exits_0_without_reading_further_lines()
    {
        await using var simulator = await SimulatorFixture.StartAsync();

        var result = await AqmpProcess.RunAsync(["shell", simulator.Address], $"quit{Nl}query-status{Nl}");

        ToolAssert.Success(result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.StdoutLines, Does.Contain("{}"), "quit's reply");
            Assert.That(result.StdoutLines.LastOrDefault(), Is.EqualTo("The server quit: session closed."), result.ToString());
            Assert.That(result.Stdout, Does.Not.Contain("\"status\""), "the line after quit is not run");
            Assert.That(result.Stderr, Is.Empty, "no 'Broken pipe', nothing");
        }
    }

    [Test]
    public async Task After_quit_on_a_terminal_less_session_with_stdin_still_open_the_shell_exits_at_once()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        await using var shell = AqmpProcess.Start("shell", simulator.Address);

        await shell.WriteInputAsync($"quit{Nl}");
        var result = await shell.WaitForExitAsync(within: TimeSpan.FromSeconds(5));

        ToolAssert.Success(result);
        Assert.That(result.StdoutLines.LastOrDefault(), Is.EqualTo("The server quit: session closed."), result.ToString());
    }

    [Test]
    public async Task A_server_that_goes_away_while_the_shell_waits_for_input_ends_it_at_once_with_exit_2()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        await using var shell = AqmpProcess.Start("shell", simulator.Address);
        await shell.WaitForConnectedAsync();

        // stdin stays open and silent: the loss must be noticed without a next command.
        await simulator.Simulator.StopAsync().Bounded();
        var result = await shell.WaitForExitAsync(within: TimeSpan.FromSeconds(5));

        ToolAssert.ConnectionLost(result);
    }

    [Test]
    public async Task Piped_lines_exit_1_when_a_command_failed_and_0_when_none_did()
    {
        await using var simulator = await SimulatorFixture.StartAsync();

        var failed = await AqmpProcess.RunAsync(["shell", simulator.Address], $"{SimulatorFixture.FailCommand}{Nl}query-status{Nl}");
        var fine = await AqmpProcess.RunAsync(["shell", simulator.Address], $"query-status{Nl}help{Nl}history{Nl}");

        using (Assert.EnterMultipleScope())
        {
            Assert.That(failed.ExitCode, Is.EqualTo(ExitCode.QmpError), failed.ToString());
            Assert.That(failed.StderrLines, Is.EqualTo(new[] { "error: DeviceNotFound: Device 'nosuch0' not found" }), failed.ToString());
            Assert.That(failed.Stdout, Does.Contain("\"status\":\"running\""), "the shell goes on after a failure");
            ToolAssert.Success(fine);
        }
    }
}
