using System.CommandLine;
using Aqmp.Pipelines.Cli.CommandLine;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp help [COMMAND]</c>: prints the help of COMMAND, or of <c>aqmp</c> itself, as <c>--help</c> does.</summary>
internal sealed class HelpCommand : ToolCommand
{
    private readonly Argument<string?> _command = new("COMMAND") { Description = "the subcommand to explain", Arity = ArgumentArity.ZeroOrOne };

    /// <summary>Creates the subcommand; <paramref name="root"/> is the command line whose subcommands it explains.</summary>
    public HelpCommand(RootCommand root)
        : base("help", "print the help of a subcommand, or this help")
    {
        Add(_command);
        string[] names = [.. root.Subcommands.Select(command => command.Name), Name];
        _command.CompletionSources.Add(names);
        _command.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && !names.Contains(result.Tokens[0].Value))
            {
                result.AddError(UsageError.Unknown("command", result.Tokens[0].Value, names));
            }
        });
        SetAction(result =>
        {
            string[] helpOf = result.GetValue(_command) is { } name ? [name, "--help"] : ["--help"];
            return root.Parse(helpOf, result.Configuration).Invoke(result.InvocationConfiguration);
        });
    }

    public override string Usage => "aqmp help [COMMAND]";

    public override string Details => "Prints the help of COMMAND (as 'aqmp COMMAND --help'), or without COMMAND the help of aqmp itself.";
}
