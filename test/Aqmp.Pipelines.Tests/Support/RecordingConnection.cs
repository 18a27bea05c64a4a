using System.IO.Pipelines;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// A transport written outside the library, over in-memory pipes, that records how it was
/// released (each of <see cref="CloseAsync"/> and <see cref="Abort"/> counts its calls; the first
/// of them completes both ends of the pipe).
/// </summary>
public sealed class RecordingConnection(IDuplexPipe pipe) : TransportConnection
{
    private int _abortCalls;
    private int _closeCalls;
    private int _released;

    public override IDuplexPipe Pipe { get; } = pipe;

    public int AbortCalls => Volatile.Read(ref _abortCalls);

    public int CloseCalls => Volatile.Read(ref _closeCalls);

    public override ValueTask CloseAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _closeCalls);
        Release();
        return ValueTask.CompletedTask;
    }

    public override void Abort()
    {
        Interlocked.Increment(ref _abortCalls);
        Release();
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            Pipe.Output.Complete();
            Pipe.Input.Complete();
        }
    }
}
