using System.Text;

namespace Aqmp.Pipelines.Cli.Shell.Editor;

/// <summary>
/// Reads lines from a terminal as readline does: the line is edited in place (cursor keys,
/// Home/End, Ctrl-A/E/B/F, Backspace/Delete, Ctrl-U/K/W), Up/Down recall the
/// <see cref="LineHistory"/>, Tab completes from an <see cref="ICompletionSource"/>, Ctrl-C drops
/// the line and starts a fresh one, Ctrl-D on an empty line ends the input. Output from other
/// threads goes through <see cref="WriteAbove"/>, which prints it above the prompt and redraws the
/// prompt and the partly typed line below it; every write to the terminal happens under one lock.
/// </summary>
/// <remarks>
/// Each character is taken to be one column wide. The editor keeps track of which row of the
/// (possibly wrapped) prompt and line the terminal's cursor is on, so that it can go back to the
/// prompt's first row, erase to the end of the screen and draw again.
/// </remarks>
internal sealed class LineEditor
{
    private readonly ITerminal _terminal;
    private readonly LineHistory _history;
    private readonly ICompletionSource? _completion;
    private readonly Lock _lock = new();
    private readonly LineBuffer _buffer = new();
    private readonly Queue<ConsoleKeyInfo> _typeAhead = new();
    private string _prompt = "";
    private bool _editing;
    private int _cursorRow;
    private int _historyIndex;
    private string _draft = "";

    /// <summary>Creates an editor on <paramref name="terminal"/>.</summary>
    public LineEditor(ITerminal terminal, LineHistory history, ICompletionSource? completion = null)
    {
        _terminal = terminal;
        _history = history;
        _completion = completion;
    }

    private enum Outcome
    {
        Continue,
        Submit,
        EndOfInput,
    }

    /// <summary>The history that Up/Down recall and that each entered line is added to.</summary>
    public LineHistory History => _history;

    /// <summary>
    /// Shows <paramref name="prompt"/> and lets the user edit a line until Enter (which returns it,
    /// adding it to the history) or Ctrl-D on an empty line or the end of input (which return null).
    /// </summary>
    /// <param name="prompt">Printed before the line; one column per character.</param>
    /// <param name="cancellationToken">Stops editing: the line is left as typed, followed by a new line.</param>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async Task<string?> ReadLineAsync(string prompt, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _prompt = prompt;
            _buffer.Clear();
            _historyIndex = _history.Lines.Count;
            _draft = "";
            _editing = true;
            _cursorRow = 0;
            Render(fresh: true);
        }

        try
        {
            while (true)
            {
                ConsoleKeyInfo key;
                try
                {
                    key = await NextKeyAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (EndOfStreamException)
                {
                    lock (_lock)
                    {
                        FinishLine("\n");
                        return null;
                    }
                }

                lock (_lock)
                {
                    switch (Handle(key))
                    {
                        case Outcome.Submit:
                            var line = _buffer.Text;
                            FinishLine("\n");
                            _history.Add(line);
                            return line;
                        case Outcome.EndOfInput:
                            FinishLine("\n");
                            return null;
                    }
                }
            }
        }
        finally
        {
            lock (_lock)
            {
                if (_editing)
                {
                    FinishLine("\n");
                }
            }
        }
    }

    /// <summary>
    /// While no line is being edited (a command runs), waits for Ctrl-C; other keys are kept and
    /// given to the next <see cref="ReadLineAsync"/> as typed ahead. Returns true on Ctrl-C (having
    /// printed <c>^C</c> and a new line), false when <paramref name="cancellationToken"/> fires or
    /// the input ends.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting (the command ended); no key is lost.</param>
    public async Task<bool> WaitForInterruptAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            ConsoleKeyInfo key;
            try
            {
                key = await _terminal.ReadKeyAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or EndOfStreamException)
            {
                return false;
            }

            if (ControlCode(key) == 'C')
            {
                WriteAbove("^C\n");
                return true;
            }

            _typeAhead.Enqueue(key);
        }
    }

    /// <summary>
    /// Prints <paramref name="text"/> on its own line(s): while a line is being edited, the prompt
    /// and the line are erased, the text written (ending with a new line) and the prompt and line
    /// drawn again below it with the cursor where it was. Safe to call from any thread.
    /// </summary>
    /// <param name="text">The text; a new line is added when it does not end with one and a line is being edited.</param>
    /// <param name="error">Write to the terminal's error stream instead of its output.</param>
    public void WriteAbove(string text, bool error = false)
    {
        lock (_lock)
        {
            if (_editing)
            {
                _terminal.Write(MoveToFirstRow() + "\e[J");
                if (!text.EndsWith('\n'))
                {
                    text += "\n";
                }
            }

            if (error)
            {
                _terminal.WriteError(text);
            }
            else
            {
                _terminal.Write(text);
            }

            if (_editing)
            {
                Render(fresh: true);
            }
        }
    }

    private async ValueTask<ConsoleKeyInfo> NextKeyAsync(CancellationToken cancellationToken) =>
        _typeAhead.TryDequeue(out var key) ? key : await _terminal.ReadKeyAsync(cancellationToken).ConfigureAwait(false);

    private Outcome Handle(ConsoleKeyInfo key)
    {
        switch (key.Key)
        {
            case ConsoleKey.Enter:
                return Outcome.Submit;
            case ConsoleKey.Backspace:
                Edit(_buffer.DeleteBackward());
                return Outcome.Continue;
            case ConsoleKey.Delete:
                Edit(_buffer.DeleteForward());
                return Outcome.Continue;
            case ConsoleKey.LeftArrow:
                Edit(_buffer.Move(-1));
                return Outcome.Continue;
            case ConsoleKey.RightArrow:
                Edit(_buffer.Move(1));
                return Outcome.Continue;
            case ConsoleKey.Home:
                _buffer.Home();
                Render();
                return Outcome.Continue;
            case ConsoleKey.End:
                _buffer.End();
                Render();
                return Outcome.Continue;
            case ConsoleKey.UpArrow:
                RecallPrevious();
                return Outcome.Continue;
            case ConsoleKey.DownArrow:
                RecallNext();
                return Outcome.Continue;
            case ConsoleKey.Tab:
                Complete();
                return Outcome.Continue;
        }

        switch (ControlCode(key))
        {
            case 'A':
                _buffer.Home();
                break;
            case 'E':
                _buffer.End();
                break;
            case 'B':
                _buffer.Move(-1);
                break;
            case 'F':
                _buffer.Move(1);
                break;
            case 'H':
                _buffer.DeleteBackward();
                break;
            case 'U':
                _buffer.KillToStart();
                break;
            case 'K':
                _buffer.KillToEnd();
                break;
            case 'W':
                _buffer.KillPreviousWord();
                break;
            case 'P':
                RecallPrevious();
                return Outcome.Continue;
            case 'N':
                RecallNext();
                return Outcome.Continue;
            case 'I':
                Complete();
                return Outcome.Continue;
            case 'J' or 'M':
                return Outcome.Submit;
            case 'L':
                _terminal.Write("\e[H\e[2J");
                _cursorRow = 0;
                Render(fresh: true);
                return Outcome.Continue;
            case 'C':
                FinishLine("^C\n");
                _buffer.Clear();
                _historyIndex = _history.Lines.Count;
                _editing = true;
                Render(fresh: true);
                return Outcome.Continue;
            case 'D':
                if (_buffer.Length == 0)
                {
                    return Outcome.EndOfInput;
                }

                _buffer.DeleteForward();
                break;
            case null when key.KeyChar != '\0' && !char.IsControl(key.KeyChar) && (key.Modifiers & (ConsoleModifiers.Control | ConsoleModifiers.Alt)) == 0:
                _buffer.Insert(key.KeyChar.ToString());
                break;
            default:
                // Escape, function keys, Alt combinations: nothing (yet).
                return Outcome.Continue;
        }

        Render();
        return Outcome.Continue;
    }

    /// <summary>The letter of a Ctrl-letter key (Ctrl-A is 'A'), from its character or its key and modifiers; null for other keys.</summary>
    private static char? ControlCode(ConsoleKeyInfo key)
    {
        if (key.KeyChar is >= '\x01' and <= '\x1a')
        {
            return (char)('A' + key.KeyChar - 1);
        }

        return (key.Modifiers & ConsoleModifiers.Control) != 0 && key.Key is >= ConsoleKey.A and <= ConsoleKey.Z
            ? (char)('A' + (key.Key - ConsoleKey.A))
            : null;
    }

    private void Edit(bool changed)
    {
        if (changed)
        {
            Render();
        }
    }

    private void RecallPrevious()
    {
        if (_historyIndex == 0)
        {
            return;
        }

        if (_historyIndex == _history.Lines.Count)
        {
            _draft = _buffer.Text;
        }

        _buffer.Set(_history.Lines[--_historyIndex]);
        Render();
    }

    private void RecallNext()
    {
        if (_historyIndex >= _history.Lines.Count)
        {
            return;
        }

        _historyIndex++;
        _buffer.Set(_historyIndex == _history.Lines.Count ? _draft : _history.Lines[_historyIndex]);
        Render();
    }

    /// <summary>
    /// Tab: a single candidate replaces the word (with its suffix); several extend the word to
    /// their common prefix, or, when that adds nothing, are listed below the line.
    /// </summary>
    private void Complete()
    {
        var completion = _completion?.Complete(_buffer.Text, _buffer.Cursor) ?? Completion.None;
        var candidates = completion.Candidates;
        var wordLength = _buffer.Cursor - completion.Start;
        if (candidates.Count == 0)
        {
            _terminal.Write("\a");
            return;
        }

        if (candidates.Count == 1)
        {
            _buffer.Replace(completion.Start, wordLength, candidates[0] + completion.Suffix);
            Render();
            return;
        }

        var prefix = CommonPrefix(candidates);
        if (prefix.Length > wordLength)
        {
            _buffer.Replace(completion.Start, wordLength, prefix);
            Render();
            return;
        }

        Render(cursorAtEnd: true);
        _terminal.Write("\n" + Columns(candidates, _terminal.Width));
        _cursorRow = 0;
        Render(fresh: true);
    }

    private static string CommonPrefix(IReadOnlyList<string> words)
    {
        var length = words[0].Length;
        foreach (var word in words)
        {
            length = Math.Min(length, word.Length);
            while (length > 0 && string.CompareOrdinal(word, 0, words[0], 0, length) != 0)
            {
                length--;
            }
        }

        return words[0][..length];
    }

    /// <summary>The words in rows of columns as wide as the longest word and two spaces, each row ending with a new line.</summary>
    private static string Columns(IReadOnlyList<string> words, int width)
    {
        var columnWidth = words.Max(w => w.Length) + 2;
        var perRow = Math.Max(1, width / columnWidth);
        var text = new StringBuilder();
        for (var i = 0; i < words.Count; i++)
        {
            var last = i % perRow == perRow - 1 || i == words.Count - 1;
            text.Append(last ? words[i] : words[i].PadRight(columnWidth));
            if (last)
            {
                text.Append('\n');
            }
        }

        return text.ToString();
    }

    /// <summary>Moves the terminal's cursor to the end of the line, writes <paramref name="tail"/> and stops editing.</summary>
    private void FinishLine(string tail)
    {
        var wrapped = Render(cursorAtEnd: true);
        _terminal.Write(wrapped && tail == "\n" ? "" : tail);
        _editing = false;
        _cursorRow = 0;
    }

    /// <summary>Goes back to the start of the prompt's first row.</summary>
    private string MoveToFirstRow() => (_cursorRow > 0 ? $"\e[{_cursorRow}A" : "") + "\r";

    /// <summary>
    /// Draws the prompt and the line and puts the terminal's cursor at the buffer's cursor (or at
    /// the end). Unless <paramref name="fresh"/> (the terminal's cursor is at the start of an empty
    /// row), first goes back to the prompt's first row and erases what was drawn. Returns whether
    /// the text filled its last row exactly, so that a new line was written to start the next row.
    /// </summary>
    private bool Render(bool fresh = false, bool cursorAtEnd = false)
    {
        var width = _terminal.Width;
        var text = new StringBuilder();
        if (!fresh)
        {
            text.Append(MoveToFirstRow());
        }

        text.Append("\e[J").Append(_prompt).Append(_buffer.Text);
        var total = _prompt.Length + _buffer.Length;
        var wrapped = total > 0 && total % width == 0;
        if (wrapped)
        {
            // A terminal leaves its cursor on the last column of a full row until the next
            // character: start the next row so that the cursor's row is known.
            text.Append('\n');
        }

        var endRow = total / width;
        var target = cursorAtEnd ? total : _prompt.Length + _buffer.Cursor;
        var targetRow = target / width;
        var targetColumn = target % width;
        if (endRow > targetRow)
        {
            text.Append($"\e[{endRow - targetRow}A");
        }

        if (target != total || wrapped)
        {
            text.Append('\r');
            if (targetColumn > 0)
            {
                text.Append($"\e[{targetColumn}C");
            }
        }

        _cursorRow = targetRow;
        _terminal.Write(text.ToString());
        return wrapped;
    }
}
