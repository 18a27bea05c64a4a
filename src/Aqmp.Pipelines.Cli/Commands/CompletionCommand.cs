using System.CommandLine;
using Aqmp.Pipelines.Cli.CommandLine;
using Aqmp.Pipelines.Qmp.Simulator;

namespace Aqmp.Pipelines.Cli.Commands;

/// <summary><c>aqmp completion bash|zsh|fish</c>: prints a script that teaches the shell to complete <c>aqmp</c>'s command line.</summary>
internal sealed class CompletionCommand : ToolCommand
{
    private readonly Argument<string> _shell = new("SHELL") { Description = "the shell to complete in: bash, zsh or fish" };

    /// <summary>Creates the subcommand for the command line <paramref name="root"/>; it writes to <paramref name="console"/>.</summary>
    public CompletionCommand(RootCommand root, ToolConsole console)
        : base("completion", "print a shell completion script (bash, zsh, fish)")
    {
        Add(_shell);
        _shell.CompletionSources.Add(CompletionScript.Shells);
        _shell.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && !CompletionScript.Shells.Contains(result.Tokens[0].Value))
            {
                result.AddError($"SHELL must be {string.Join(", ", CompletionScript.Shells[..^1])} or {CompletionScript.Shells[^1]}, not '{result.Tokens[0].Value}'");
            }
        });
        SetAction(async (result, cancellationToken) =>
        {
            // The QMP command names are those of the schema the simulator ships (QEMU 7.2's).
            await using var simulator = new QmpSimulator();
            await console.Output.WriteAsync(CompletionScript.For(result.GetRequiredValue(_shell), root, simulator.Commands).AsMemory(), cancellationToken).ConfigureAwait(false);
            return ExitCodes.Success;
        });
    }

    public override string Usage => "aqmp completion bash|zsh|fish";

    public override string Details => """
        Prints a script that completes aqmp's subcommands, their options and, for 'execute', the
        QMP command names of QEMU 7.2's schema (as the built-in simulator knows them). Load it with
          bash:  source <(aqmp completion bash)      (or save it in ~/.local/share/bash-completion/completions/aqmp)
          zsh:   source <(aqmp completion zsh)
          fish:  aqmp completion fish | source      (or save it in ~/.config/fish/completions/aqmp.fish)
        """;
}
