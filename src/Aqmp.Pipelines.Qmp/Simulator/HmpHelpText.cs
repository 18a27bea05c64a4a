namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The help texts of QEMU 7.2's human monitor (<c>help</c> and <c>info</c> of
/// <c>qemu-system-x86_64</c>), shipped as resources of this assembly and read once, on first use,
/// with the entry of each command and <c>info</c> subcommand found by name.
/// </summary>
internal sealed class HmpHelpText
{
    private static readonly Lazy<HmpHelpText> Instance = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly Dictionary<string, HmpHelpEntry> _commands;
    private readonly Dictionary<string, HmpHelpEntry> _infoCommands;

    private HmpHelpText(string help, string info)
    {
        Help = help;
        Info = info;
        _commands = Entries(help, line => line[..line.IndexOf(' ', StringComparison.Ordinal)]);
        _infoCommands = Entries(info, line => line["info ".Length..line.IndexOf(' ', "info ".Length)]);
    }

    /// <summary>QEMU 7.2's help texts, loaded on first use.</summary>
    public static HmpHelpText Qemu72 => Instance.Value;

    /// <summary>What <c>help</c> prints: every command, lines ended by CRLF.</summary>
    public string Help { get; }

    /// <summary>What <c>info</c> prints: every <c>info</c> subcommand, lines ended by CRLF.</summary>
    public string Info { get; }

    /// <summary>Finds a command by any of its names (<c>stop</c> or <c>s</c>).</summary>
    /// <param name="name">The name.</param>
    /// <returns>Its entry, or null when QEMU has no such command.</returns>
    public HmpHelpEntry? Command(string name) => _commands.GetValueOrDefault(name);

    /// <summary>Finds an <c>info</c> subcommand by name.</summary>
    /// <param name="name">The name, e.g. <c>status</c>.</param>
    /// <returns>Its entry, or null when QEMU has no such subcommand.</returns>
    public HmpHelpEntry? InfoCommand(string name) => _infoCommands.GetValueOrDefault(name);

    /// <summary>
    /// Splits a help text into entries: an entry starts at a line that does not start with white
    /// space or <c>[</c>, and goes on up to the next such line.
    /// </summary>
    private static Dictionary<string, HmpHelpEntry> Entries(string text, Func<string, string> names)
    {
        var entries = new Dictionary<string, HmpHelpEntry>(StringComparer.Ordinal);
        var lines = text.Split("\r\n")[..^1];
        for (var start = 0; start < lines.Length;)
        {
            var end = start + 1;
            while (end < lines.Length && IsContinuation(lines[end]))
            {
                end++;
            }

            var first = lines[start];
            var fullName = names(first);
            var afterName = first.IndexOf(fullName, StringComparison.Ordinal) + fullName.Length;
            var dashes = first.IndexOf(" -- ", afterName, StringComparison.Ordinal);
            var entry = new HmpHelpEntry(
                fullName,
                string.Concat(lines[start..end].Select(l => l + "\r\n")),
                TakesArguments: dashes < 0 || first[afterName..dashes].Trim().Length > 0);
            foreach (var name in fullName.Split('|'))
            {
                entries[name] = entry;
            }

            start = end;
        }

        return entries;
    }

    private static bool IsContinuation(string line) => line.Length == 0 || line[0] is ' ' or '\t' or '[';

    private static HmpHelpText Load() => new(Read("hmp-help.txt"), Read("hmp-info.txt"));

    /// <summary>Reads a text resource, its LF line ends turned into the CRLF QEMU's monitor writes.</summary>
    private static string Read(string fileName)
    {
        using var reader = new StreamReader(QemuResources.Open(fileName));
        return reader.ReadToEnd().Replace("\n", "\r\n", StringComparison.Ordinal);
    }
}
