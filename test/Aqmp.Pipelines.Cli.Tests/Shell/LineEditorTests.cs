using Aqmp.Pipelines.Cli.Shell.Editor;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>
/// The line editor's keys, against a fake terminal: keys in, the returned line and the screen
/// (rows and cursor) out.
/// </summary>
[TestFixture]
public sealed class LineEditorTests
{
    private const string Prompt = "> ";

    private static readonly string[] Commands = ["query-status", "query-stats", "query-version", "stop", "cont"];

    [Test]
    public async Task Typed_text_is_echoed_after_the_prompt_and_returned_on_Enter()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("query-status"));

        Assert.That(line, Is.EqualTo("query-status"));
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> query-status" }));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, 0)), "Enter leaves the cursor at the start of the next row");
    }

    [Test]
    public async Task Stop_then_Ctrl_U_then_four_Backspaces_then_query_status_returns_query_status()
    {
        var (terminal, editor) = Create();

        terminal.Type("stop").Ctrl('U');
        terminal.Press(ConsoleKey.Backspace, 4).Type("query-status");
        var line = await EnterAsync(editor, terminal);

        Assert.That(line, Is.EqualTo("query-status"));
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> query-status" }));
    }

    [Test]
    public async Task Ctrl_U_then_typing_replaces_the_whole_line()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("human-monitor-command").Ctrl('U').Type("cont"));

        Assert.That(line, Is.EqualTo("cont"));
    }

    [Test]
    public async Task Ctrl_U_kills_only_what_is_left_of_the_cursor()
    {
        var (terminal, editor) = Create();

        terminal.Type("xxx stop").Press(ConsoleKey.LeftArrow, 4).Ctrl('U');
        var line = await EnterAsync(editor, terminal);

        Assert.That(line, Is.EqualTo("stop"));
    }

    [Test]
    public async Task Ctrl_W_kills_the_previous_word_and_the_spaces_after_it()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("blockdev-add driver=null-co  ").Ctrl('W').Type("node-name=n0"));

        Assert.That(line, Is.EqualTo("blockdev-add node-name=n0"));
    }

    [Test]
    public async Task Ctrl_K_kills_from_the_cursor_to_the_end()
    {
        var (terminal, editor) = Create();

        terminal.Type("stop now please").Ctrl('A').Press(ConsoleKey.RightArrow, 4).Ctrl('K');
        var line = await EnterAsync(editor, terminal);

        Assert.That(line, Is.EqualTo("stop"));
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> stop" }), "the killed text is erased from the screen");
    }

    [Test]
    public async Task Left_arrow_then_typing_inserts_before_the_cursor_and_the_screen_cursor_follows()
    {
        var (terminal, editor) = Create();
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);

        terminal.Type("query-sus").Press(ConsoleKey.LeftArrow, 2).Type("tat");
        await terminal.WhenIdle();

        Assert.That(terminal.Screen.CursorLine, Is.EqualTo("> query-status"));
        Assert.That(terminal.Screen.Column, Is.EqualTo(Prompt.Length + "query-stat".Length), terminal.Screen.ToString());
        Assert.That(await EnterAsync(reading, terminal), Is.EqualTo("query-status"));
    }

    [Test]
    public async Task Home_End_Ctrl_A_and_Ctrl_E_move_to_either_end()
    {
        var (terminal, editor) = Create();

        terminal.Type("b").Press(ConsoleKey.Home).Type("a").Press(ConsoleKey.End).Type("c").Ctrl('A').Type("<").Ctrl('E').Type(">");
        var line = await EnterAsync(editor, terminal);

        Assert.That(line, Is.EqualTo("<abc>"));
    }

    [Test]
    public async Task Ctrl_B_and_Ctrl_F_move_by_one_character()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("ac").Ctrl('B').Ctrl('B').Ctrl('F').Type("b"));

        Assert.That(line, Is.EqualTo("abc"));
    }

    [Test]
    public async Task Delete_removes_the_character_under_the_cursor_and_Backspace_the_one_before()
    {
        var (terminal, editor) = Create();

        terminal.Type("stXoYp").Press(ConsoleKey.LeftArrow, 2).Press(ConsoleKey.Delete).Press(ConsoleKey.LeftArrow).Press(ConsoleKey.Backspace);
        var line = await EnterAsync(editor, terminal);

        Assert.That(line, Is.EqualTo("stop"));
    }

    [Test]
    public async Task Backspace_at_the_start_and_Delete_at_the_end_change_nothing()
    {
        var (terminal, editor) = Create();

        terminal.Type("stop").Press(ConsoleKey.Delete).Press(ConsoleKey.Home).Press(ConsoleKey.Backspace);
        var line = await EnterAsync(editor, terminal);

        Assert.That(line, Is.EqualTo("stop"));
    }

    [Test]
    public async Task Up_recalls_earlier_lines_newest_first_and_Down_comes_back_to_the_line_being_typed()
    {
        var history = new LineHistory();
        history.Add("query-status");
        history.Add("stop");
        var (terminal, editor) = Create(history: history);
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);

        terminal.Type("dr").Press(ConsoleKey.UpArrow);
        await terminal.WhenIdle();
        Assert.That(terminal.Screen.CursorLine, Is.EqualTo("> stop"));

        terminal.Press(ConsoleKey.UpArrow);
        await terminal.WhenIdle();
        Assert.That(terminal.Screen.CursorLine, Is.EqualTo("> query-status"));
        Assert.That(terminal.Screen.Column, Is.EqualTo(Prompt.Length + "query-status".Length), "a recalled line puts the cursor at its end");

        terminal.Press(ConsoleKey.UpArrow);
        await terminal.WhenIdle();
        Assert.That(terminal.Screen.CursorLine, Is.EqualTo("> query-status"), "Up at the oldest line stays there");

        terminal.Press(ConsoleKey.DownArrow).Press(ConsoleKey.DownArrow);
        await terminal.WhenIdle();
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> dr" }), "the draft is back, and nothing else is left on the screen");

        terminal.Press(ConsoleKey.UpArrow).Press(ConsoleKey.UpArrow).Press(ConsoleKey.DownArrow);
        Assert.That(await EnterAsync(reading, terminal), Is.EqualTo("stop"));
    }

    [Test]
    public async Task Ctrl_P_and_Ctrl_N_recall_as_Up_and_Down()
    {
        var history = new LineHistory();
        history.Add("a");
        history.Add("b");
        var (terminal, editor) = Create(history: history);

        var line = await EnterAsync(editor, terminal.Ctrl('P').Ctrl('P').Ctrl('N'));

        Assert.That(line, Is.EqualTo("b"));
    }

    [Test]
    public async Task Entered_lines_join_the_history_and_blank_or_repeated_lines_do_not()
    {
        var (terminal, editor) = Create();

        await EnterAsync(editor, terminal.Type("stop"));
        await EnterAsync(editor, terminal.Type("stop"));
        await EnterAsync(editor, terminal.Type("   "));
        await EnterAsync(editor, terminal.Type("cont"));

        Assert.That(editor.History.Lines, Is.EqualTo(new[] { "stop", "cont" }));
    }

    [Test]
    public async Task Tab_completes_a_unique_command_name_and_adds_a_space()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("query-v").Press(ConsoleKey.Tab));

        Assert.That(line, Is.EqualTo("query-version "));
    }

    [Test]
    public async Task Tab_on_an_ambiguous_prefix_extends_it_to_what_the_candidates_share()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("query-s").Press(ConsoleKey.Tab));

        Assert.That(line, Is.EqualTo("query-stat"));
    }

    [Test]
    public async Task Tab_when_nothing_can_be_added_lists_the_candidates_below_and_redraws_the_prompt_and_line()
    {
        var (terminal, editor) = Create();
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);

        terminal.Type("query-stat").Press(ConsoleKey.Tab);
        await terminal.WhenIdle();

        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> query-stat", "query-stats   query-status", "> query-stat" }), terminal.Screen.ToString());
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((2, Prompt.Length + "query-stat".Length)));
        Assert.That(await EnterAsync(reading, terminal.Type("us")), Is.EqualTo("query-status"));
    }

    [Test]
    public async Task Tab_completes_an_argument_name_with_its_equals_sign()
    {
        var completion = NewCompletion();
        completion.SetArguments(new Dictionary<string, IReadOnlyList<string>> { ["blockdev-add"] = ["driver", "node-name"] });
        var (terminal, editor) = Create(completion: completion);

        var line = await EnterAsync(editor, terminal.Type("blockdev-add dr").Press(ConsoleKey.Tab).Type("null-co n").Press(ConsoleKey.Tab).Type("n0"));

        Assert.That(line, Is.EqualTo("blockdev-add driver=null-co node-name=n0"));
    }

    [Test]
    public async Task Tab_without_candidates_rings_the_bell_and_changes_nothing()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("nosuch").Press(ConsoleKey.Tab));

        Assert.That(line, Is.EqualTo("nosuch"));
        Assert.That(terminal.Screen.Bells, Is.EqualTo(1));
    }

    [Test]
    public async Task An_event_arriving_mid_typing_is_printed_above_and_the_prompt_and_input_are_redrawn_with_the_cursor_in_place()
    {
        var (terminal, editor) = Create();
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);
        terminal.Type("query-sta").Press(ConsoleKey.LeftArrow, 2);
        await terminal.WhenIdle();

        await Task.Run(() => editor.WriteAbove("event: {\"event\": \"STOP\"}\n")).Bounded();

        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "event: {\"event\": \"STOP\"}", "> query-sta" }), terminal.Screen.ToString());
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, Prompt.Length + "query-s".Length)));
        Assert.That(await EnterAsync(reading, terminal.Press(ConsoleKey.End).Type("tus")), Is.EqualTo("query-status"));
    }

    [Test]
    public async Task Text_written_above_without_a_new_line_still_gets_a_row_of_its_own()
    {
        var (terminal, editor) = Create();
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);
        terminal.Type("st");
        await terminal.WhenIdle();

        editor.WriteAbove("one", error: true);

        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "one", "> st" }));
        Assert.That(terminal.Errors, Is.EqualTo(new[] { "one\n" }));
        Assert.That(await EnterAsync(reading, terminal), Is.EqualTo("st"));
    }

    [Test]
    public async Task Events_written_from_many_threads_while_typing_each_keep_a_row_and_the_line_stays_last()
    {
        var (terminal, editor) = Create();
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);
        terminal.Type("stop");
        await terminal.WhenIdle();

        await Task.WhenAll(Enumerable.Range(0, 50).Select(i => Task.Run(() => editor.WriteAbove($"event {i}\n")))).Bounded();

        var lines = terminal.Screen.Lines;
        Assert.That(lines.Take(50).Order(), Is.EquivalentTo(Enumerable.Range(0, 50).Select(i => $"event {i}")), terminal.Screen.ToString());
        Assert.That(lines, Has.Count.EqualTo(51));
        Assert.That(lines[^1], Is.EqualTo("> stop"));
        Assert.That(await EnterAsync(reading, terminal), Is.EqualTo("stop"));
    }

    [Test]
    public async Task A_line_longer_than_the_width_wraps_and_editing_it_redraws_every_row()
    {
        var (terminal, editor) = Create(width: 10);
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);

        terminal.Type("0123456789abcdefghij").Ctrl('A').Press(ConsoleKey.Delete);
        await terminal.WhenIdle();

        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> 12345678", "9abcdefghi", "j" }), terminal.Screen.ToString());
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((0, 2)));

        editor.WriteAbove("event\n");
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "event", "> 12345678", "9abcdefghi", "j" }), terminal.Screen.ToString());
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, 2)));

        Assert.That(await EnterAsync(reading, terminal), Is.EqualTo("123456789abcdefghij"));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((4, 0)), "Enter goes below the last row");
    }

    [Test]
    public async Task A_line_that_fills_its_last_row_exactly_puts_the_cursor_at_the_start_of_the_next()
    {
        var (terminal, editor) = Create(width: 10);
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);

        terminal.Type("01234567");
        await terminal.WhenIdle();

        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> 01234567" }));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, 0)), terminal.Screen.ToString());

        terminal.Press(ConsoleKey.Backspace);
        await terminal.WhenIdle();
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> 0123456" }));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((0, 9)));

        Assert.That(await EnterAsync(reading, terminal.Type("7")), Is.EqualTo("01234567"));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, 0)), "no empty row after a full one");
    }

    [Test]
    public async Task Ctrl_C_prints_a_caret_C_drops_the_line_and_starts_an_empty_one()
    {
        var (terminal, editor) = Create();
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);

        terminal.Type("system_reset").Press(ConsoleKey.Home).Ctrl('C');
        await terminal.WhenIdle();

        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> system_reset^C", ">" }));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, Prompt.Length)));
        Assert.That(reading.IsCompleted, Is.False, "Ctrl-C does not end the reading");
        Assert.That(await EnterAsync(reading, terminal.Type("stop")), Is.EqualTo("stop"));
        Assert.That(editor.History.Lines, Is.EqualTo(new[] { "stop" }), "the dropped line is not in the history");
    }

    [Test]
    public async Task Ctrl_D_on_an_empty_line_ends_the_input_with_a_new_line()
    {
        var (terminal, editor) = Create();

        terminal.Ctrl('D');
        var line = await editor.ReadLineAsync(Prompt, CancellationToken.None).Bounded();

        Assert.That(line, Is.Null);
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { ">" }));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, 0)));
    }

    [Test]
    public async Task Ctrl_D_on_a_line_deletes_the_character_under_the_cursor()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("stopp").Press(ConsoleKey.LeftArrow).Ctrl('D'));

        Assert.That(line, Is.EqualTo("stop"));
    }

    [Test]
    public async Task The_end_of_input_ends_the_reading_with_a_new_line()
    {
        var (terminal, editor) = Create();

        terminal.Type("sto").EndInput();
        var line = await editor.ReadLineAsync(Prompt, CancellationToken.None).Bounded();

        Assert.That(line, Is.Null);
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> sto" }));
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, 0)));
    }

    [Test]
    public async Task Cancelling_the_reading_leaves_the_line_on_screen_and_moves_below_it()
    {
        var (terminal, editor) = Create();
        using var cancel = new CancellationTokenSource();
        var reading = editor.ReadLineAsync(Prompt, cancel.Token);
        terminal.Type("sto");
        await terminal.WhenIdle();

        await cancel.CancelAsync();

        Assert.That(async () => await reading.Bounded(), Throws.InstanceOf<OperationCanceledException>());
        Assert.That((terminal.Screen.Row, terminal.Screen.Column), Is.EqualTo((1, 0)));
        editor.WriteAbove("after\n");
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> sto", "after" }), "nothing is redrawn once reading has stopped");
    }

    [Test]
    public async Task Control_and_escape_keys_without_a_binding_insert_nothing()
    {
        var (terminal, editor) = Create();

        var line = await EnterAsync(editor, terminal.Type("st").Press(ConsoleKey.Escape).Press(ConsoleKey.F5).Ctrl('T').Ctrl('O').Type("op"));

        Assert.That(line, Is.EqualTo("stop"));
    }

    [Test]
    public async Task Ctrl_L_clears_the_screen_and_redraws_the_line_at_the_top()
    {
        var (terminal, editor) = Create();
        editor.WriteAbove("old output\n");
        var reading = editor.ReadLineAsync(Prompt, CancellationToken.None);

        terminal.Type("stop").Ctrl('L');
        await terminal.WhenIdle();

        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "> stop" }));
        Assert.That(await EnterAsync(reading, terminal), Is.EqualTo("stop"));
    }

    [Test]
    public async Task Ctrl_C_while_a_command_runs_is_an_interrupt_and_other_keys_wait_for_the_next_line()
    {
        var (terminal, editor) = Create();
        using var stop = new CancellationTokenSource();

        var waiting = editor.WaitForInterruptAsync(stop.Token);

        terminal.Type("co");
        await terminal.WhenIdle();
        Assert.That(waiting.IsCompleted, Is.False, "plain keys do not end the wait");

        terminal.Ctrl('C');
        Assert.That(await waiting.Bounded(), Is.True);
        Assert.That(terminal.Screen.Lines, Is.EqualTo(new[] { "^C" }), "typed-ahead keys are not echoed while the command runs");

        var line = await EnterAsync(editor, terminal.Type("nt"));
        Assert.That(line, Is.EqualTo("cont"), "keys typed while the command ran start the next line");
    }

    [Test]
    public async Task Waiting_for_an_interrupt_ends_without_one_when_the_command_ends_and_takes_no_key()
    {
        var (terminal, editor) = Create();
        using var stop = new CancellationTokenSource();
        var waiting = editor.WaitForInterruptAsync(stop.Token);
        await terminal.WhenIdle();

        await stop.CancelAsync();

        Assert.That(await waiting.Bounded(), Is.False);
        Assert.That(await EnterAsync(editor, terminal.Type("stop")), Is.EqualTo("stop"));
    }

    private static Aqmp.Pipelines.Cli.Shell.ShellCompletion NewCompletion()
    {
        var completion = new Aqmp.Pipelines.Cli.Shell.ShellCompletion();
        completion.SetCommands(Commands);
        return completion;
    }

    private static (FakeTerminal Terminal, LineEditor Editor) Create(int width = 80, LineHistory? history = null, Aqmp.Pipelines.Cli.Shell.ShellCompletion? completion = null)
    {
        var terminal = new FakeTerminal(width);
        return (terminal, new LineEditor(terminal, history ?? new LineHistory(), completion ?? NewCompletion()));
    }

    /// <summary>Presses Enter after the queued keys and returns what a fresh reading returns.</summary>
    private static Task<string?> EnterAsync(LineEditor editor, FakeTerminal terminal) => EnterAsync(editor.ReadLineAsync(Prompt, CancellationToken.None), terminal);

    /// <summary>Presses Enter after the queued keys and returns what <paramref name="reading"/> returns.</summary>
    private static async Task<string?> EnterAsync(Task<string?> reading, FakeTerminal terminal)
    {
        terminal.Press(ConsoleKey.Enter);
        return await reading.Bounded();
    }
}
