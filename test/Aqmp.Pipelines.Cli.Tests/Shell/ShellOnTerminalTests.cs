using System.Diagnostics;
using Aqmp.Pipelines.Cli.Commands;
using Aqmp.Pipelines.Cli.Shell;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>
/// <c>aqmp shell</c> as on a terminal, run in-process with a fake terminal against an in-process
/// simulator: what the user types, what the server receives, what the screen shows.
/// </summary>
[TestFixture]
public sealed class ShellOnTerminalTests : TempDirectoryTest
{
    private const string Prompt = "(QEMU) ";

    private string HistoryFile => Path.Combine(TempDirectory, "history");

    [Test]
    public async Task Stop_then_Ctrl_U_then_four_Backspaces_then_query_status_sends_query_status_and_Ctrl_D_ends_the_shell()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var (terminal, shell) = await StartAtPromptAsync(simulator);

        terminal.Type($"{SimulatorFixture.EchoCommand} a=1").Ctrl('U').Press(ConsoleKey.Backspace, 4).Type($"{SimulatorFixture.EchoCommand} b=2").Press(ConsoleKey.Enter);
        await WaitForScreenAsync(terminal, s => s.Lines.Contains("  \"b\": 2"));
        terminal.Ctrl('D');

        Assert.That(await shell.Bounded(), Is.EqualTo(ExitCodes.Success), terminal.Screen.ToString());
        Assert.That(simulator.Echoed, Is.EqualTo(new[] { """{"b":2}""" }));
        Assert.That(terminal.Screen.Lines, Does.Contain($"{Prompt}{SimulatorFixture.EchoCommand} b=2"));
        Assert.That(terminal.Screen.Lines[^1], Is.EqualTo(Prompt.TrimEnd()), "Ctrl-D leaves the last prompt as it was");
        Assert.That((terminal.Screen.Column, terminal.Errors), Is.EqualTo((0, new List<string>())), "and moves to a new line");
        Assert.That(File.ReadAllLines(HistoryFile), Is.EqualTo(new[] { $"{SimulatorFixture.EchoCommand} b=2" }));
    }

    [Test]
    public async Task An_event_arriving_while_the_user_types_is_printed_above_the_prompt_which_is_redrawn_with_the_input()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var (terminal, shell) = await StartAtPromptAsync(simulator);

        terminal.Type("query-ver");
        await terminal.WhenIdle();
        await simulator.EmitAsync("POWERDOWN");
        await WaitForScreenAsync(terminal, s => s.Lines.Any(l => l.Contains("POWERDOWN", StringComparison.Ordinal)));

        var lines = terminal.Screen.Lines;
        Assert.That(lines[^2], Does.StartWith("event: ").And.Contain("\"event\": \"POWERDOWN\""), terminal.Screen.ToString());
        Assert.That(lines[^1], Is.EqualTo(Prompt + "query-ver"));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((lines.Count - 1, (Prompt + "query-ver").Length)));

        // Tab completes from the server's query-commands (filled in the background after connecting).
        await WaitForCompletionAsync(terminal, "query-ver", "query-version ");
        terminal.Press(ConsoleKey.Enter);
        await WaitForScreenAsync(terminal, s => s.Lines.Contains("  \"package\": \"aqmp-simulator\""));
        terminal.Ctrl('D');
        Assert.That(await shell.Bounded(), Is.EqualTo(ExitCodes.Success), terminal.Screen.ToString());
    }

    [Test]
    public async Task Ctrl_C_while_a_command_runs_stops_waiting_for_it_and_the_shell_goes_on()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        simulator.Simulator.Handle("x-hang", async (_, _) =>
        {
            await release.Task;
            return null;
        });
        var (terminal, shell) = await StartAtPromptAsync(simulator);

        terminal.Type("x-hang").Press(ConsoleKey.Enter);
        await terminal.WhenIdle();
        terminal.Ctrl('C');
        await WaitForScreenAsync(terminal, s => s.CursorLine == Prompt.TrimEnd() && s.Lines.Count > 3);

        Assert.That(terminal.Screen.Lines.TakeLast(4), Is.EqualTo(new[] { Prompt + "x-hang", "^C", "interrupted: the reply, if any, will be dropped", Prompt.TrimEnd() }), terminal.Screen.ToString());
        release.SetResult();
        terminal.Type("query-status").Press(ConsoleKey.Enter);
        await WaitForScreenAsync(terminal, s => s.Lines.Contains("  \"status\": \"running\","));
        terminal.Ctrl('D');
        Assert.That(await shell.Bounded(), Is.EqualTo(ExitCodes.Success), terminal.Screen.ToString());
    }

    [Test]
    public async Task Ctrl_C_on_the_prompt_clears_the_line_and_does_not_end_the_shell()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var (terminal, shell) = await StartAtPromptAsync(simulator);

        terminal.Type("system_reset").Ctrl('C');
        await terminal.WhenIdle();

        Assert.That(terminal.Screen.Lines.TakeLast(2), Is.EqualTo(new[] { Prompt + "system_reset^C", Prompt.TrimEnd() }));
        Assert.That(shell.IsCompleted, Is.False);
        terminal.Type("exit").Press(ConsoleKey.Enter);
        Assert.That(await shell.Bounded(), Is.EqualTo(ExitCodes.Success), terminal.Screen.ToString());
        Assert.That(simulator.Simulator.SessionsServed, Is.EqualTo(1));
    }

    [Test]
    public async Task After_transaction_open_paren_the_prompt_is_TRANS_and_nothing_is_sent_until_the_closing_paren()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var (terminal, shell) = await StartAtPromptAsync(simulator);

        terminal.Type("transaction(").Press(ConsoleKey.Enter);
        await WaitForScreenAsync(terminal, s => s.CursorLine == "TRANS>");
        terminal.Type($"{SimulatorFixture.EchoCommand} a=1").Press(ConsoleKey.Enter);
        await WaitForScreenAsync(terminal, s => s.CursorLine == "TRANS>" && s.Lines.Contains($"TRANS> {SimulatorFixture.EchoCommand} a=1"));
        Assert.That(simulator.Echoed, Is.Empty, "an action line is kept, not run");

        terminal.Type(")").Press(ConsoleKey.Enter);
        await WaitForScreenAsync(terminal, s => s.CursorLine == Prompt.TrimEnd() && s.Lines.Contains("TRANS> )"));
        terminal.Ctrl('D');

        Assert.That(await shell.Bounded(), Is.EqualTo(ExitCodes.Success), terminal.Screen.ToString());
        Assert.That(terminal.Errors, Has.Some.Contains($"Parameter 'type' does not accept value '{SimulatorFixture.EchoCommand}'"), "one transaction reached the simulator, with the action typed (which its transaction refuses)");
        Assert.That(simulator.Echoed, Is.Empty);
    }

    [Test]
    public async Task A_server_that_goes_away_while_the_prompt_waits_ends_the_shell_at_once_with_exit_2()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        var (terminal, shell) = await StartAtPromptAsync(simulator);
        terminal.Type("query-st");
        await terminal.WhenIdle();

        await simulator.Simulator.StopAsync().Bounded();

        Assert.That(await shell.Bounded(), Is.EqualTo(ExitCodes.ConnectionFailed), terminal.Screen.ToString());
        Assert.That(terminal.Errors, Has.Some.StartWith("aqmp: connection lost: "), terminal.Screen.ToString());
        Assert.That(terminal.Screen.Lines, Does.Contain(Prompt + "query-st"), "the unfinished line stays on the screen");
    }

    /// <summary>Starts the shell on a 100-column fake terminal and waits for its first prompt.</summary>
    private async Task<(FakeTerminal Terminal, Task<int> Shell)> StartAtPromptAsync(SimulatorFixture simulator)
    {
        var terminal = new FakeTerminal(100);
        var options = ShellAddressAndFlagsTests.Options(null, "-p", "--history-file", HistoryFile, simulator.Address);
        var shell = Task.Run(() => ShellCommand.RunAsync(options, TextReader.Null, TextWriter.Null, TextWriter.Null, terminal, CancellationToken.None));
        await WaitForScreenAsync(terminal, s => s.CursorLine == Prompt.TrimEnd());
        return (terminal, shell);
    }

    /// <summary>Presses Tab after <paramref name="typed"/> (already on the line) until the line reads <paramref name="completed"/>: completion is filled once the server has answered.</summary>
    private static async Task WaitForCompletionAsync(FakeTerminal terminal, string typed, string completed)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            terminal.Press(ConsoleKey.Tab);
            await terminal.WhenIdle();
            if (terminal.Screen.CursorLine == (Prompt + completed).TrimEnd())
            {
                return;
            }

            Assert.That(deadline.Elapsed, Is.LessThan(TestTimeouts.Default), terminal.Screen.ToString());
            terminal.Ctrl('U').Type(typed);
            await Task.Delay(20);
        }
    }

    private static async Task WaitForScreenAsync(FakeTerminal terminal, Func<VirtualScreen, bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (terminal.Shows(condition))
            {
                return;
            }

            Assert.That(deadline.Elapsed, Is.LessThan(TestTimeouts.Default), $"the screen never showed what was expected:\n{terminal.Screen}");
            await Task.Delay(10);
        }
    }
}
