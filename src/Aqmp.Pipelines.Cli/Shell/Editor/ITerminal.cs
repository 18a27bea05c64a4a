namespace Aqmp.Pipelines.Cli.Shell.Editor;

/// <summary>
/// What the line editor needs of a terminal: keys in, text and ANSI control sequences out, and its
/// width. <see cref="SystemTerminal"/> is the real one; tests drive the editor with a fake.
/// </summary>
internal interface ITerminal
{
    /// <summary>The width in columns (at least 1).</summary>
    int Width { get; }

    /// <summary>
    /// The next key pressed, without echoing it. Cancellation-safe: a read that is cancelled takes
    /// no key, so the next read gets it.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <exception cref="EndOfStreamException">No more keys will come (the input has ended).</exception>
    ValueTask<ConsoleKeyInfo> ReadKeyAsync(CancellationToken cancellationToken);

    /// <summary>Writes <paramref name="text"/> (which may hold ANSI control sequences) and flushes it.</summary>
    void Write(string text);

    /// <summary>Writes <paramref name="text"/> to the error stream, which shares the screen, and flushes it.</summary>
    void WriteError(string text);
}
