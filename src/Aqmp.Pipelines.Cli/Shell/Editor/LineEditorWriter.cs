using System.Text;

namespace Aqmp.Pipelines.Cli.Shell.Editor;

/// <summary>
/// A <see cref="TextWriter"/> whose lines go through <see cref="LineEditor.WriteAbove"/>, so that
/// replies, errors and events written while the user types appear above the prompt. Text is held
/// until a new line (or <see cref="Flush"/>) so that a line is never split by a redraw. Safe to use
/// from several threads.
/// </summary>
internal sealed class LineEditorWriter : TextWriter
{
    private readonly LineEditor _editor;
    private readonly bool _error;
    private readonly StringBuilder _pending = new();
    private readonly Lock _lock = new();

    /// <summary>Creates a writer to the editor's terminal's output, or its error stream when <paramref name="error"/>.</summary>
    public LineEditorWriter(LineEditor editor, bool error)
    {
        _editor = editor;
        _error = error;

        // The terminal turns a line feed into carriage return and line feed.
        NewLine = "\n";
    }

    /// <inheritdoc/>
    public override Encoding Encoding => Encoding.UTF8;

    /// <inheritdoc/>
    public override void Write(char value) => Write(value.ToString());

    /// <inheritdoc/>
    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return;
        }

        string complete;
        lock (_lock)
        {
            _pending.Append(value);
            var end = LastIndexOf(_pending, '\n');
            if (end < 0)
            {
                return;
            }

            complete = _pending.ToString(0, end + 1);
            _pending.Remove(0, end + 1);
        }

        _editor.WriteAbove(complete, _error);
    }

    /// <inheritdoc/>
    public override void WriteLine(string? value) => Write(value + "\n");

    /// <inheritdoc/>
    public override Task WriteAsync(char value)
    {
        Write(value);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override Task WriteAsync(string? value)
    {
        Write(value);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override Task WriteLineAsync(string? value)
    {
        WriteLine(value);
        return Task.CompletedTask;
    }

    /// <summary>Writes what is held, even without a new line.</summary>
    public override void Flush()
    {
        string rest;
        lock (_lock)
        {
            rest = _pending.ToString();
            _pending.Clear();
        }

        if (rest.Length > 0)
        {
            _editor.WriteAbove(rest, _error);
        }
    }

    /// <inheritdoc/>
    public override Task FlushAsync()
    {
        Flush();
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        Flush();
        return Task.CompletedTask;
    }

    private static int LastIndexOf(StringBuilder text, char value)
    {
        for (var i = text.Length - 1; i >= 0; i--)
        {
            if (text[i] == value)
            {
                return i;
            }
        }

        return -1;
    }
}
