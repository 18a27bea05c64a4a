using System.Globalization;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The part of QEMU 7.2's human monitor the simulator models, for <c>human-monitor-command</c>:
/// <c>help</c> (<c>?</c>) with QEMU's text, <c>info</c> with QEMU's list and its <c>status</c>,
/// <c>version</c>, <c>kvm</c>, <c>name</c> and <c>uuid</c> subcommands, <c>stop</c> (<c>s</c>) and
/// <c>cont</c> (<c>c</c>) with their events; an unknown command, extra words after a command that
/// takes none, and an empty line are answered with QEMU's text. A command QEMU has but the
/// simulator does not model is refused with <see cref="QmpCommandError.NotSimulated"/>.
/// </summary>
internal sealed class HumanMonitor(SimulatedMachine machine, QmpVersion version)
{
    /// <summary>Runs one command line and returns what the monitor prints.</summary>
    /// <param name="commandLine">The command line.</param>
    /// <param name="emit">Sends an event by name (stop and cont emit STOP and RESUME).</param>
    /// <returns>The output, lines ended by CRLF.</returns>
    /// <exception cref="QmpCommandError">The command is one the simulator does not model.</exception>
    public async ValueTask<string> RunAsync(string commandLine, Func<string, ValueTask> emit)
    {
        var help = HmpHelpText.Qemu72;
        var position = 0;
        var word = NextWord(commandLine, ref position);
        if (word.Length == 0)
        {
            return string.Empty;
        }

        if (help.Command(word) is not { } command)
        {
            return $"unknown command: '{word}'\r\n";
        }

        switch (command.FullName)
        {
            case "help|?":
                return Help(help, commandLine, position);
            case "info":
                return Info(help, commandLine, position);
        }

        if (Extraneous(command, commandLine, position) is { } refusal)
        {
            return refusal;
        }

        switch (command.FullName)
        {
            case "stop|s":
                if (machine.Pause())
                {
                    await emit("STOP").ConfigureAwait(false);
                }

                return string.Empty;
            case "cont|c":
                if (machine.Resume())
                {
                    await emit("RESUME").ConfigureAwait(false);
                }

                return string.Empty;
            default:
                throw QmpCommandError.NotSimulated($"human monitor command {command.FullName}");
        }
    }

    private static string Help(HmpHelpText help, string commandLine, int position)
    {
        var topic = NextWord(commandLine, ref position);
        if (topic.Length == 0)
        {
            return help.Help;
        }

        if (topic == "info")
        {
            var subcommand = NextWord(commandLine, ref position);
            if (subcommand.Length == 0)
            {
                return help.Info;
            }

            return help.InfoCommand(subcommand) is { } infoEntry ? infoEntry.Text : $"unknown command: 'info {subcommand}'\r\n";
        }

        return help.Command(topic) is { } entry ? entry.Text : $"unknown command: '{topic}'\r\n";
    }

    private string Info(HmpHelpText help, string commandLine, int position)
    {
        var name = NextWord(commandLine, ref position);
        if (name.Length == 0)
        {
            return help.Info;
        }

        if (help.InfoCommand(name) is not { } subcommand)
        {
            return $"unknown command: 'info {name}'\r\n";
        }

        if (Extraneous(subcommand, commandLine, position) is { } refusal)
        {
            return refusal;
        }

        return name switch
        {
            "status" => machine.Status switch
            {
                "running" => "VM status: running\r\n",
                "paused" => "VM status: paused\r\n",
                var other => $"VM status: paused ({other})\r\n",
            },
            "version" => string.Create(CultureInfo.InvariantCulture, $"{version.Major}.{version.Minor}.{version.Micro}{version.Package}\r\n"),
            "kvm" => "kvm support: disabled\r\n",
            "name" => string.Empty,
            "uuid" => "00000000-0000-0000-0000-000000000000\r\n",
            _ => throw QmpCommandError.NotSimulated($"human monitor command info {name}"),
        };
    }

    /// <summary>
    /// QEMU's answer to words after a command that takes none: it names the command and suggests
    /// help on the command line as typed up to there.
    /// </summary>
    private static string? Extraneous(HmpHelpEntry command, string commandLine, int position)
    {
        if (command.TakesArguments || commandLine.AsSpan(position).TrimStart().Length == 0)
        {
            return null;
        }

        return $"{command.FullName}: extraneous characters at the end of line\r\n"
            + $"Try \"help {commandLine[..position]}\" for more information\r\n";
    }

    /// <summary>The next word (ended by white space) from <paramref name="position"/>, which moves past it.</summary>
    private static string NextWord(string text, ref int position)
    {
        while (position < text.Length && IsSpace(text[position]))
        {
            position++;
        }

        var start = position;
        while (position < text.Length && !IsSpace(text[position]))
        {
            position++;
        }

        return text[start..position];
    }

    /// <summary>White space as C's <c>isspace</c> sees it.</summary>
    private static bool IsSpace(char c) => c is ' ' or '\t' or '\n' or '\v' or '\f' or '\r';
}
