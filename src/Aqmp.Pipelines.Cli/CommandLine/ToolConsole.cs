namespace Aqmp.Pipelines.Cli.CommandLine;

/// <summary>
/// Where a subcommand reads and writes: the process's standard streams, or a test's.
/// <paramref name="Interactive"/>: stdin and stdout are a terminal (the shell edits lines then).
/// </summary>
internal sealed record ToolConsole(TextReader Input, TextWriter Output, TextWriter Error, bool Interactive)
{
    /// <summary>Reads nothing, writes nowhere, not interactive.</summary>
    public static ToolConsole Null { get; } = new(TextReader.Null, TextWriter.Null, TextWriter.Null, Interactive: false);
}
