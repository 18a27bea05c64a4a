namespace Aqmp.Pipelines.Cli;

/// <summary>A wrong command line: printed as one line, followed by a hint to use --help.</summary>
internal sealed class UsageException(string message) : Exception(message);
