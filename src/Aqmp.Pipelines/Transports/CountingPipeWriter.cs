using System.IO.Pipelines;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A pass-through <see cref="PipeWriter"/> that counts the bytes written through it, so that a
/// graceful close can wait until the transport has delivered all of them.
/// </summary>
internal sealed class CountingPipeWriter(PipeWriter inner) : PipeWriter
{
    private long _bytesWritten;

    /// <summary>Bytes advanced through this writer so far.</summary>
    public long BytesWritten => Volatile.Read(ref _bytesWritten);

    public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => inner.UnflushedBytes;

    public override void Advance(int bytes)
    {
        inner.Advance(bytes);
        Volatile.Write(ref _bytesWritten, _bytesWritten + bytes);
    }

    public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

    public override void CancelPendingFlush() => inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
}
