namespace Aqmp.Pipelines.Cli.Shell.Editor;

/// <summary>
/// The candidates for the word from <see cref="Start"/> to the cursor, sorted; when there is only
/// one, it is inserted followed by <see cref="Suffix"/> (a space after a command name, nothing
/// after <c>name=</c>).
/// </summary>
/// <param name="Start">Where the word being completed starts in the line.</param>
/// <param name="Candidates">The words that can replace it, each starting with it.</param>
/// <param name="Suffix">What follows a unique candidate.</param>
internal sealed record Completion(int Start, IReadOnlyList<string> Candidates, string Suffix)
{
    /// <summary>No candidates.</summary>
    public static Completion None { get; } = new(0, [], "");
}
