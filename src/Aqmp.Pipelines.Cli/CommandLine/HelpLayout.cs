using System.CommandLine;
using System.CommandLine.Invocation;
using System.Text;

namespace Aqmp.Pipelines.Cli.CommandLine;

/// <summary>
/// The action of <c>--help</c> (<c>-h</c>), on stdout: for <c>aqmp</c> itself the overview
/// (<see cref="AqmpCommandLine.Overview"/>: every subcommand's synopsis and the exit codes); for a
/// subcommand its synopsis and prose (<see cref="ToolCommand"/>), then the lists of its arguments
/// and options, generated from the command's symbols (names, value names, descriptions).
/// Parse errors do not matter with <c>--help</c>: it prints the help and exits 0 anyway.
/// </summary>
internal sealed class HelpLayout : SynchronousCommandLineAction
{
    private const int NameColumn = 32;

    /// <inheritdoc/>
    public override bool ClearsParseErrors => true;

    /// <summary>The help of <paramref name="command"/>, as printed.</summary>
    public static string Describe(Command command)
    {
        var text = new StringBuilder();
        if (command is ToolCommand tool)
        {
            text.AppendLine($"usage: {tool.Usage}").AppendLine().AppendLine(tool.Details);
            Section(text, "arguments:", command.Arguments.Where(argument => !argument.Hidden).Select(argument => (argument.Name, argument.Description)));
        }
        else
        {
            text.AppendLine(AqmpCommandLine.Overview);
        }

        var options = command.Options.Concat(command.Parents.OfType<Command>().SelectMany(parent => parent.Options.Where(option => option.Recursive)))
            .Where(option => !option.Hidden)
            .Select(option => (Names(option), option.Description));
        Section(text, "options:", options);
        return text.ToString();
    }

    /// <inheritdoc/>
    public override int Invoke(ParseResult parseResult)
    {
        parseResult.InvocationConfiguration.Output.Write(Describe(parseResult.CommandResult.Command));
        return ExitCodes.Success;
    }

    private static string Names(Option option)
    {
        var names = string.Join(", ", option.Aliases.Order(StringComparer.Ordinal).Append(option.Name));
        return option.Arity.MaximumNumberOfValues > 0 ? $"{names} {option.HelpName ?? "VALUE"}" : names;
    }

    private static void Section(StringBuilder text, string heading, IEnumerable<(string Name, string? Description)> rows)
    {
        text.AppendLine().AppendLine(heading);
        foreach (var (name, description) in rows)
        {
            var first = $"  {name}";
            text.Append(first.Length < NameColumn ? first.PadRight(NameColumn) : first + Environment.NewLine + new string(' ', NameColumn));
            text.AppendLine(Wrap(description ?? string.Empty, AqmpCommandLine.MaxWidth - NameColumn).Replace("\n", "\n" + new string(' ', NameColumn), StringComparison.Ordinal));
        }
    }

    private static string Wrap(string text, int width)
    {
        var lines = new List<string>();
        var line = new StringBuilder();
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                lines.Add(line.ToString());
                line.Clear();
            }

            line.Append(line.Length > 0 ? " " : string.Empty).Append(word);
        }

        lines.Add(line.ToString());
        return string.Join('\n', lines);
    }
}
