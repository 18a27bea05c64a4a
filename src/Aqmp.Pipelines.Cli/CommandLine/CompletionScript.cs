using System.CommandLine;
using System.Text;

namespace Aqmp.Pipelines.Cli.CommandLine;

/// <summary>
/// Shell completion scripts for <c>aqmp</c>, written from its command tree: subcommand names, each
/// subcommand's options, and each positional argument's words (an ADDRESS or a FILE completes
/// file names; <c>execute</c>'s COMMAND completes the QMP command names given). Nothing runs
/// <c>aqmp</c> while completing: the words are in the script.
/// </summary>
internal static class CompletionScript
{
    /// <summary>The shells a script is written for.</summary>
    public static readonly string[] Shells = ["bash", "zsh", "fish"];

    /// <summary>
    /// The script for <paramref name="shell"/> (one of <see cref="Shells"/>): bash's defines and
    /// registers a completion function, zsh's loads bash's through <c>bashcompinit</c>, fish's is a
    /// list of <c>complete</c> commands.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shell"/> is not one of <see cref="Shells"/>.</exception>
    public static string For(string shell, RootCommand root, IReadOnlyCollection<string> qmpCommands) => shell switch
    {
        "bash" => Bash(root, qmpCommands),
        "zsh" => $"""
            # zsh completion for aqmp, through zsh's bash completion support; load with:
            #   source <(aqmp completion zsh)
            autoload -U +X compinit && compinit
            autoload -U +X bashcompinit && bashcompinit
            {Bash(root, qmpCommands)}
            """,
        "fish" => Fish(root, qmpCommands),
        _ => throw new ArgumentOutOfRangeException(nameof(shell), shell, $"one of {string.Join(", ", Shells)}"),
    };

    private static string Bash(RootCommand root, IReadOnlyCollection<string> qmpCommands)
    {
        var script = new StringBuilder();
        script.Append($$"""
            # bash completion for aqmp; load with:
            #   source <(aqmp completion bash)
            _aqmp() {
                # zsh (through bashcompinit): arrays indexed from 0, as in bash.
                [ -n "${ZSH_VERSION:-}" ] && setopt localoptions ksharrays
                local cur="${COMP_WORDS[COMP_CWORD]}" prev="" sub="" i word positional=0 values=""
                [ "$COMP_CWORD" -gt 0 ] && prev="${COMP_WORDS[COMP_CWORD-1]}"
                COMPREPLY=()
                for ((i = 1; i < COMP_CWORD; i++)); do
                    case "${COMP_WORDS[i]}" in -*) ;; *) sub="${COMP_WORDS[i]}"; break ;; esac
                done
                if [ -z "$sub" ]; then
                    case "$cur" in
                        -*) COMPREPLY=($(compgen -W "{{Words(OptionNames(root))}}" -- "$cur")) ;;
                        *) COMPREPLY=($(compgen -W "{{Words(root.Subcommands.Select(command => command.Name))}}" -- "$cur")) ;;
                    esac
                    return 0
                fi
                case "$sub" in

            """);
        foreach (var command in root.Subcommands)
        {
            var valueOptions = command.Options.Where(TakesValue).SelectMany(Names).ToList();
            script.Append($$"""
                        {{command.Name}})
                            values=" {{Words(valueOptions)}} "
                            for ((i = i + 1; i < COMP_CWORD; i++)); do
                                word="${COMP_WORDS[i]}"
                                case "$word" in
                                    -*) [[ "$values" == *" $word "* ]] && i=$((i + 1)) ;;
                                    *) positional=$((positional + 1)) ;;
                                esac
                            done
                            case "$prev" in

                """);
            foreach (var option in command.Options.Where(TakesValue))
            {
                script.Append($"""
                                    {string.Join('|', Names(option))}) {(IsPath(option) ? "COMPREPLY=($(compgen -f -- \"$cur\"))" : "COMPREPLY=()")}; return 0 ;;

                    """);
            }

            script.Append($$"""
                            esac
                            if [[ "$cur" == -* ]]; then
                                COMPREPLY=($(compgen -W "{{Words(OptionNames(command))}}" -- "$cur"))
                                return 0
                            fi
                            case "$positional" in

                """);
            var index = 0;
            foreach (var argument in command.Arguments)
            {
                var completion = IsPath(argument) ? "COMPREPLY=($(compgen -f -- \"$cur\"))"
                    : Words(ArgumentWords(argument, qmpCommands)) is { Length: > 0 } words ? $"COMPREPLY=($(compgen -W \"{words}\" -- \"$cur\"))"
                    : "COMPREPLY=()";
                script.Append($"""
                                    {index++}) {completion} ;;

                    """);
            }

            script.Append("""
                            esac
                            ;;

                """);
        }

        script.Append("""
                esac
                return 0
            }
            complete -o default -o bashdefault -F _aqmp aqmp

            """);
        return script.ToString();
    }

    private static string Fish(RootCommand root, IReadOnlyCollection<string> qmpCommands)
    {
        var script = new StringBuilder();
        script.Append($$"""
            # fish completion for aqmp; load with:
            #   aqmp completion fish | source
            # __aqmp_positional N VALUE-OPTIONS...: whether the word being typed is the subcommand's argument N (0 first)
            function __aqmp_positional
                set -l wanted $argv[1]
                set -l values $argv[2..-1]
                set -l words (commandline -opc)
                set -l count 0
                set -l skip 0
                for word in $words[3..-1]
                    if test $skip = 1
                        set skip 0
                    else if contains -- $word $values
                        set skip 1
                    else if not string match -q -- '-*' $word
                        set count (math $count + 1)
                    end
                end
                test $count = $wanted
            end
            complete -c aqmp -f
            complete -c aqmp -n __fish_use_subcommand -l help -s h -d 'show help'
            complete -c aqmp -n __fish_use_subcommand -l version -d 'show the version'

            """);
        foreach (var command in root.Subcommands)
        {
            var seen = $"__fish_seen_subcommand_from {command.Name}";
            script.Append($"complete -c aqmp -n __fish_use_subcommand -a {command.Name} -d {Quote(command.Description ?? string.Empty)}\n");
            foreach (var option in command.Options)
            {
                var names = string.Concat(Names(option).Select(name => name.StartsWith("--", StringComparison.Ordinal) ? $" -l {name[2..]}" : $" -s {name[1..]}"));
                var value = !TakesValue(option) ? string.Empty : IsPath(option) ? " -r -F" : " -r";
                script.Append($"complete -c aqmp -n '{seen}'{names}{value} -d {Quote(option.Description ?? string.Empty)}\n");
            }

            var valueOptions = Words(command.Options.Where(TakesValue).SelectMany(Names));
            var index = 0;
            foreach (var argument in command.Arguments)
            {
                var condition = Quote($"{seen}; and __aqmp_positional {index++} {valueOptions}".TrimEnd());
                if (IsPath(argument))
                {
                    script.Append($"complete -c aqmp -n {condition} -F\n");
                }
                else if (ArgumentWords(argument, qmpCommands) is { Count: > 0 } words)
                {
                    script.Append($"complete -c aqmp -n {condition} -a {Quote(Words(words))}\n");
                }
            }
        }

        return script.ToString();
    }

    /// <summary>Whether an argument or option value is a file name: an ADDRESS (a socket path) or a FILE.</summary>
    private static bool IsPath(Symbol symbol) => symbol switch
    {
        Argument argument => argument.Name == "ADDRESS",
        Option option => option.HelpName == "FILE",
        _ => false,
    };

    /// <summary>The words an argument takes: the QMP command names for COMMAND, else its own completions (a fixed choice, subcommand names).</summary>
    private static IReadOnlyList<string> ArgumentWords(Argument argument, IReadOnlyCollection<string> qmpCommands) =>
        argument.Name == "COMMAND" && argument.Parents.OfType<Command>().Any(parent => parent.Name == "execute")
            ? [.. qmpCommands]
            : [.. argument.GetCompletions(System.CommandLine.Completions.CompletionContext.Empty).Select(item => item.Label)];

    private static bool TakesValue(Option option) => option.Arity.MaximumNumberOfValues > 0;

    private static IEnumerable<string> Names(Option option) => option.Aliases.Prepend(option.Name);

    private static IEnumerable<string> OptionNames(Command command) =>
        command.Options.Concat(command.Parents.OfType<Command>().SelectMany(parent => parent.Options.Where(option => option.Recursive))).SelectMany(Names).Distinct();

    private static string Words(IEnumerable<string> words) => string.Join(' ', words);

    private static string Quote(string text) => "'" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
}
