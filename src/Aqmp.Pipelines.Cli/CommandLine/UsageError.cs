using System.CommandLine;
using System.CommandLine.Parsing;

namespace Aqmp.Pipelines.Cli.CommandLine;

/// <summary>
/// A wrong command line said in one line, as the tool prints it after <c>aqmp: </c>: an unknown
/// command or option (with the closest known name, when one is near), an option without its
/// value, a value an option or argument rejects (its parser's own message), or else the
/// subcommand's synopsis (too few or too many arguments).
/// </summary>
internal static class UsageError
{
    /// <summary>
    /// Describes the first thing wrong with <paramref name="result"/>, or returns null when nothing
    /// is (or when <c>--help</c> was asked for, which shows the help whatever else was given). A word
    /// that looks like an option (<c>-x</c>, <c>--name</c>) but is none is wrong even where the
    /// parser took it for an argument.
    /// </summary>
    public static string? Find(ParseResult result)
    {
        if (result.Action is HelpLayout)
        {
            return null;
        }

        var command = result.CommandResult.Command;
        var unmatched = command.Arguments
            .SelectMany(argument => result.GetResult(argument)?.Tokens ?? [])
            .Select(token => token.Value)
            .Concat(result.UnmatchedTokens)
            .FirstOrDefault(token => token.Length > 1 && token[0] == '-')
            ?? result.UnmatchedTokens.FirstOrDefault();
        if (unmatched is not null)
        {
            if (unmatched.Length > 1 && unmatched[0] == '-')
            {
                var option = unmatched.Split('=', 2)[0];
                return Unknown("option", option, OptionNames(command));
            }

            return command is RootCommand
                ? Unknown("command", unmatched, command.Subcommands.Select(subcommand => subcommand.Name))
                : Synopsis(command);
        }

        foreach (var error in result.Errors)
        {
            switch (error.SymbolResult)
            {
                case OptionResult { Tokens.Count: 0 } option:
                    return $"option '{option.IdentifierToken?.Value ?? option.Option.Name}' needs a value";
                case ArgumentResult { Parent: OptionResult { Tokens.Count: 0 } option }:
                    return $"option '{option.IdentifierToken?.Value ?? option.Option.Name}' needs a value";
                case ArgumentResult { Tokens.Count: > 0 } or OptionResult:
                    return error.Message;
            }
        }

        return result.Errors.Count > 0 ? Synopsis(command) : null;
    }

    /// <summary>An error naming a word that is not one of <paramref name="known"/>, with the closest of them if one is near.</summary>
    public static string Unknown(string what, string typed, IEnumerable<string> known) => WithSuggestion($"unknown {what} '{typed}'", typed, known);

    /// <summary>The line after the error: where to read more, the subcommand's own help when there is one.</summary>
    public static string Hint(Command command) => command is ToolCommand ? $"Try 'aqmp {command.Name} --help'." : "Try 'aqmp --help'.";

    private static string Synopsis(Command command) => command is ToolCommand tool ? $"usage: {tool.Usage}" : $"usage: aqmp COMMAND ... ('{command.Name}' takes no more arguments)";

    private static IEnumerable<string> OptionNames(Command command) =>
        command.Options.Concat(command.Parents.OfType<Command>().SelectMany(parent => parent.Options.Where(option => option.Recursive)))
            .SelectMany(option => option.Aliases.Prepend(option.Name))
            .Where(name => name.StartsWith("--", StringComparison.Ordinal));

    private static string WithSuggestion(string message, string typed, IEnumerable<string> known) =>
        Suggestion.Closest(typed, known) is { } meant ? $"{message}; did you mean '{meant}'?" : message;
}
