using System.IO.Pipelines;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A pass-through <see cref="PipeWriter"/> that counts the bytes written through it, so that a
/// graceful close can wait until the transport has delivered all of them.
/// </summary>
/// <remarks>
/// Should an adapter complete the pipe underneath a writer (from its own thread, when the
/// connection fails), the pipe reports misuse (<see cref="InvalidOperationException"/>, or worse);
/// this writer reports what really happened: an <see cref="IOException"/>, the connection was closed.
/// </remarks>
internal sealed class CountingPipeWriter(PipeWriter inner) : PipeWriter
{
    private long _bytesWritten;

    /// <summary>Bytes advanced through this writer so far.</summary>
    public long BytesWritten => Volatile.Read(ref _bytesWritten);

    public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => inner.UnflushedBytes;

    public override void Advance(int bytes)
    {
        try
        {
            inner.Advance(bytes);
        }
        catch (Exception ex) when (IsTransportClosedUnderneath(ex))
        {
            throw Closed(ex);
        }

        Volatile.Write(ref _bytesWritten, _bytesWritten + bytes);
    }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        try
        {
            return inner.GetMemory(sizeHint);
        }
        catch (Exception ex) when (IsTransportClosedUnderneath(ex))
        {
            throw Closed(ex);
        }
    }

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        try
        {
            return inner.GetSpan(sizeHint);
        }
        catch (Exception ex) when (IsTransportClosedUnderneath(ex))
        {
            throw Closed(ex);
        }
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return inner.FlushAsync(cancellationToken);
        }
        catch (Exception ex) when (IsTransportClosedUnderneath(ex))
        {
            throw Closed(ex);
        }
    }

    public override void CancelPendingFlush() => inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

    private static bool IsTransportClosedUnderneath(Exception ex) => ex is InvalidOperationException or NullReferenceException;

    private static IOException Closed(Exception ex) => new("The connection was closed while writing to it.", ex);
}
