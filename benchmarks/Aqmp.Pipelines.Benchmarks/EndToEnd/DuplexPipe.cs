using System.IO.Pipelines;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>An in-memory pipe pair handed to a session's <c>OpenAsync(IDuplexPipe)</c>.</summary>
internal sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;

    public PipeWriter Output { get; } = output;
}
