using System.IO.Pipelines;

namespace Aqmp.Pipelines.Transports;

/// <summary>A plain pairing of a reader and a writer.</summary>
internal sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;

    public PipeWriter Output { get; } = output;
}
