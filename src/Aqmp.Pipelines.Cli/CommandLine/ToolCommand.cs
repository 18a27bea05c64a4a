using System.CommandLine;

namespace Aqmp.Pipelines.Cli.CommandLine;

/// <summary>
/// A subcommand of <c>aqmp</c> with the two texts its help starts with: a one-line synopsis
/// (<see cref="Usage"/>, also the message of a wrong command line) and the prose that follows it;
/// the help's lists of arguments and options are generated from the command's symbols.
/// </summary>
internal abstract class ToolCommand(string name, string description) : Command(name, description)
{
    /// <summary>The synopsis, as <c>aqmp NAME [OPTIONS] ARGUMENTS</c>.</summary>
    public abstract string Usage { get; }

    /// <summary>What the command does, its exit codes and examples: the help's text under the synopsis.</summary>
    public abstract string Details { get; }

    /// <summary>A new ADDRESS argument: the QMP server a client subcommand connects to.</summary>
    protected static Argument<string> ServerAddress() =>
        new("ADDRESS") { Description = "the QMP server: unix:PATH, a path containing '/', HOST:PORT or [IPv6]:PORT" };

    /// <summary>Adds <paramref name="arguments"/> and <paramref name="options"/>, in order.</summary>
    protected void AddAll(Argument[] arguments, Option[] options)
    {
        foreach (var argument in arguments)
        {
            Add(argument);
        }

        foreach (var option in options)
        {
            Add(option);
        }
    }
}
