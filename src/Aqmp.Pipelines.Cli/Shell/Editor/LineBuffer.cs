using System.Text;

namespace Aqmp.Pipelines.Cli.Shell.Editor;

/// <summary>
/// The line being edited and the cursor in it (an index from 0 to <see cref="Length"/>), with the
/// edits a line editor offers. Each edit keeps the cursor within the text.
/// </summary>
internal sealed class LineBuffer
{
    private readonly StringBuilder _text = new();

    /// <summary>The text.</summary>
    public string Text => _text.ToString();

    /// <summary>The cursor: the index the next typed character goes to.</summary>
    public int Cursor { get; private set; }

    /// <summary>The text's length.</summary>
    public int Length => _text.Length;

    /// <summary>Replaces the text with <paramref name="text"/> and puts the cursor at its end.</summary>
    public void Set(string text)
    {
        _text.Clear().Append(text);
        Cursor = _text.Length;
    }

    /// <summary>Inserts <paramref name="text"/> at the cursor and moves the cursor past it.</summary>
    public void Insert(string text)
    {
        _text.Insert(Cursor, text);
        Cursor += text.Length;
    }

    /// <summary>Replaces the <paramref name="length"/> characters from <paramref name="start"/> with <paramref name="text"/>; the cursor goes after it.</summary>
    public void Replace(int start, int length, string text)
    {
        _text.Remove(start, length).Insert(start, text);
        Cursor = start + text.Length;
    }

    /// <summary>Moves the cursor by <paramref name="delta"/>, stopping at either end; false when it did not move.</summary>
    public bool Move(int delta)
    {
        var target = Math.Clamp(Cursor + delta, 0, _text.Length);
        var moved = target != Cursor;
        Cursor = target;
        return moved;
    }

    /// <summary>Moves the cursor to the start.</summary>
    public void Home() => Cursor = 0;

    /// <summary>Moves the cursor to the end.</summary>
    public void End() => Cursor = _text.Length;

    /// <summary>Deletes the character before the cursor (Backspace); false at the start.</summary>
    public bool DeleteBackward()
    {
        if (Cursor == 0)
        {
            return false;
        }

        _text.Remove(--Cursor, 1);
        return true;
    }

    /// <summary>Deletes the character under the cursor (Delete); false at the end.</summary>
    public bool DeleteForward()
    {
        if (Cursor == _text.Length)
        {
            return false;
        }

        _text.Remove(Cursor, 1);
        return true;
    }

    /// <summary>Deletes from the start to the cursor (Ctrl-U).</summary>
    public void KillToStart()
    {
        _text.Remove(0, Cursor);
        Cursor = 0;
    }

    /// <summary>Deletes from the cursor to the end (Ctrl-K).</summary>
    public void KillToEnd() => _text.Remove(Cursor, _text.Length - Cursor);

    /// <summary>
    /// Deletes the word before the cursor and the whitespace between it and the cursor (Ctrl-W, as
    /// readline's unix-word-rubout: words are separated by whitespace).
    /// </summary>
    public void KillPreviousWord()
    {
        var start = Cursor;
        while (start > 0 && char.IsWhiteSpace(_text[start - 1]))
        {
            start--;
        }

        while (start > 0 && !char.IsWhiteSpace(_text[start - 1]))
        {
            start--;
        }

        _text.Remove(start, Cursor - start);
        Cursor = start;
    }

    /// <summary>Empties the line.</summary>
    public void Clear()
    {
        _text.Clear();
        Cursor = 0;
    }
}
