namespace Aqmp.Pipelines.Cli.Shell.Editor;

/// <summary>
/// The lines entered, oldest first, for Up/Down recall; optionally kept in a file (one line per
/// line, as readline's history file) so that the next shell recalls them too. At most
/// <see cref="Capacity"/> lines are kept, in memory and in the file.
/// </summary>
internal sealed class LineHistory
{
    /// <summary>The number of lines kept when none is given.</summary>
    public const int DefaultCapacity = 1000;

    private readonly List<string> _lines = [];
    private readonly string? _path;

    /// <summary>
    /// Creates a history; with <paramref name="path"/>, loads the file's last
    /// <paramref name="capacity"/> lines (a missing or unreadable file is an empty history) and
    /// appends each new line to it.
    /// </summary>
    public LineHistory(string? path = null, int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _path = path;
        Capacity = capacity;
        if (path is null)
        {
            return;
        }

        string[] stored;
        try
        {
            stored = File.ReadAllLines(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return;
        }

        _lines.AddRange(stored.Where(l => l.Length > 0).TakeLast(capacity));
        if (stored.Length > capacity * 2)
        {
            // Bounded on disk too: appends grow the file, so it is cut back when it has doubled.
            Rewrite();
        }
    }

    /// <summary>The most lines kept.</summary>
    public int Capacity { get; }

    /// <summary>The lines, oldest first.</summary>
    public IReadOnlyList<string> Lines => _lines;

    /// <summary>
    /// Adds <paramref name="line"/> (unless blank or the same as the last) and appends it to the
    /// file; a file that cannot be written is left alone (the history stays in memory).
    /// </summary>
    public void Add(string line)
    {
        if (string.IsNullOrWhiteSpace(line) || line.Contains('\n', StringComparison.Ordinal) || (_lines.Count > 0 && _lines[^1] == line))
        {
            return;
        }

        _lines.Add(line);
        if (_lines.Count > Capacity)
        {
            _lines.RemoveAt(0);
        }

        if (_path is null)
        {
            return;
        }

        try
        {
            File.AppendAllText(_path, line + "\n");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The history file is a convenience: the shell goes on without it.
        }
    }

    private void Rewrite()
    {
        try
        {
            File.WriteAllLines(_path!, _lines);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // As in Add.
        }
    }
}
