namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>Where the interactive shell keeps its history: like qmp-shell's <c>~/.qmp-shell_history</c>, one file in the home directory.</summary>
internal static class ShellHistoryPath
{
    /// <summary>The environment variable that names the history file; set but empty, no file is kept.</summary>
    public const string Variable = "AQMP_HISTORY";

    /// <summary>The file's name in the home directory when neither the option nor the variable names one.</summary>
    public const string DefaultName = ".aqmp_history";

    /// <summary>
    /// The history file: <paramref name="option"/> (<c>--history-file</c>) when given, else
    /// <see cref="Variable"/> when set, else <see cref="DefaultName"/> in the home directory; null
    /// (no file) when the chosen value is empty or there is no home directory.
    /// </summary>
    public static string? Resolve(string? option)
    {
        var chosen = option ?? Environment.GetEnvironmentVariable(Variable);
        if (chosen is not null)
        {
            return chosen.Length == 0 ? null : chosen;
        }

        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return home.Length == 0 ? null : Path.Combine(home, DefaultName);
    }
}
