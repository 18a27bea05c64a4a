using System.IO.Pipelines;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A transport over an existing <see cref="IDuplexPipe"/> (in-memory pipes, a pipe of another
/// framework). Closing completes both ends; there is no socket to drain.
/// </summary>
internal sealed class DuplexPipeConnection(IDuplexPipe pipe) : TransportConnection
{
    private int _released;

    public override IDuplexPipe Pipe { get; } = pipe;

    public override async ValueTask CloseAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        await Pipe.Output.CompleteAsync().ConfigureAwait(false);
        await Pipe.Input.CompleteAsync().ConfigureAwait(false);
    }

    public override void Abort()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        Pipe.Output.Complete();
        Pipe.Input.Complete();
    }
}
