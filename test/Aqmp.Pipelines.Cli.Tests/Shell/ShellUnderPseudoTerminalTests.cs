using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>The built tool's shell on a real pseudo-terminal (<see cref="PseudoTerminalShell"/>).</summary>
[TestFixture]
public sealed class ShellUnderPseudoTerminalTests : TempDirectoryTest
{
    private const string Prompt = "(QEMU) ";

    private string HistoryFile => Path.Combine(TempDirectory, "history");

    [SetUp]
    public void NeedScript()
    {
        if (!File.Exists(PseudoTerminalShell.Script))
        {
            Assert.Ignore("util-linux's script is not installed");
        }
    }

    [Test]
    public async Task Stop_Ctrl_U_four_Backspaces_and_query_status_run_query_status_and_Ctrl_D_exits_0()
    {
        using var shell = PseudoTerminalShell.Start(HistoryFile);

        await shell.WaitForAsync(Prompt);
        await shell.SendAsync("stop\x15\x7f\x7f\x7f\x7fquery-status\r");
        await shell.WaitForAsync("\"status\": \"running\"");
        await shell.SendAsync("\x04");

        Assert.That(await shell.ExitCodeAsync(), Is.Zero, shell.Output);
        Assert.That(shell.Output, Does.Not.Contain("CommandNotFound"));
        Assert.That(File.ReadAllLines(HistoryFile), Is.EqualTo(new[] { "query-status" }));
    }

    [Test]
    public async Task Ctrl_C_on_the_prompt_drops_the_line_and_the_shell_goes_on_until_exit()
    {
        using var shell = PseudoTerminalShell.Start(HistoryFile);

        await shell.WaitForAsync(Prompt);
        await shell.SendAsync("system_reset\x03");
        await shell.WaitForAsync("system_reset^C");
        await shell.SendAsync("\x1b[Aquery-version\r");
        await shell.WaitForAsync("\"package\": \"aqmp-simulator\"");
        await shell.SendAsync("exit\r");

        Assert.That(await shell.ExitCodeAsync(), Is.Zero, shell.Output);
        Assert.That(shell.Output, Does.Not.Contain("RESET"), "the dropped line was not run");
    }

    [Test]
    public async Task Up_recalls_an_earlier_line_which_Enter_runs_again()
    {
        using var shell = PseudoTerminalShell.Start(HistoryFile);

        await shell.WaitForAsync(Prompt);
        await shell.SendAsync("stop\r");
        await shell.WaitForAsync("STOP", 1);
        await shell.SendAsync("cont\r");
        await shell.WaitForAsync("RESUME", 1);
        await shell.SendAsync("\x1b[A\x1b[A\r");
        await shell.WaitForAsync("STOP", 2);
        await shell.SendAsync("exit\r");

        Assert.That(await shell.ExitCodeAsync(), Is.Zero, shell.Output);
        Assert.That(File.ReadAllLines(HistoryFile), Is.EqualTo(new[] { "stop", "cont", "stop", "exit" }));
    }

    [Test]
    public async Task Tab_completes_a_command_name_from_the_servers_commands()
    {
        using var shell = PseudoTerminalShell.Start(HistoryFile);

        await shell.WaitForAsync(Prompt);
        // The command names are fetched once connected; give the fetch a moment.
        await Task.Delay(TimeSpan.FromSeconds(1));
        await shell.SendAsync("query-versi\t\r");
        await shell.WaitForAsync("\"package\": \"aqmp-simulator\"");
        await shell.SendAsync("exit\r");

        Assert.That(await shell.ExitCodeAsync(), Is.Zero, shell.Output);
        Assert.That(File.ReadAllLines(HistoryFile)[0], Is.EqualTo("query-version "), "the name completed, with the space after it");
    }

    [Test]
    public async Task Quit_ends_the_shell_at_once_with_exit_0()
    {
        using var shell = PseudoTerminalShell.Start(HistoryFile);

        await shell.WaitForAsync(Prompt);
        await shell.SendAsync("quit\r");

        Assert.That(await shell.ExitCodeAsync(), Is.Zero, shell.Output);
        Assert.That(shell.Output, Does.Contain("SHUTDOWN"));
    }

    [Test]
    public async Task An_event_arriving_while_typing_is_printed_above_and_the_typed_line_is_kept()
    {
        await using var server = await SimulatorFixture.StartAsync();
        using var shell = PseudoTerminalShell.Start(HistoryFile, server.Address);

        await shell.WaitForAsync(Prompt);
        await shell.SendAsync("query-sta");
        await shell.WaitForAsync("query-sta");
        await server.EmitAsync("X_TYPING_EVENT");
        await shell.WaitForAsync("X_TYPING_EVENT");
        await shell.SendAsync("tus\r");
        await shell.WaitForAsync("\"status\": \"running\"");
        await shell.SendAsync("exit\r");

        Assert.That(await shell.ExitCodeAsync(), Is.Zero, shell.Output);
        Assert.That(File.ReadAllLines(HistoryFile)[0], Is.EqualTo("query-status"), "the line typed around the event is whole");
    }
}
