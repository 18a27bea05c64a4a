using System.Runtime.CompilerServices;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// The stream under a stream transport (a socket's <see cref="System.Net.Sockets.NetworkStream"/>, an
/// <see cref="System.Net.Security.SslStream"/>, a caller's stream), as its connection's reader sees
/// it: a failed read becomes the end of the stream, and the failure is remembered
/// (<see cref="ConnectionError"/>). A read takes at most <c>maximumReadSize</c> bytes, whatever the
/// size of the buffer it is given. The connection's send loop writes past it, to the inner stream or
/// socket, and reports each write (<see cref="WriteStarted"/>, <see cref="WriteEnded"/>).
/// </summary>
/// <remarks>
/// A <see cref="System.IO.Pipelines.PipeReader"/> whose stream read fails raises that exception
/// before returning the bytes it already holds: a peer that sends a last message and then resets
/// the connection (QEMU exiting on <c>quit</c> does) would lose that message. Ending the stream
/// normally instead lets the session read every byte that arrived, then learn of the error from
/// the transport. A zero-byte read (a reader waiting for data before it rents a buffer) returns 0
/// without meaning the end.
/// A failed write is remembered too: the operating system reports a reset to one call only, so
/// when a blocked send took it, the next read just sees the end of the stream.
/// </remarks>
internal sealed class TransportStream(Stream inner, int maximumReadSize = int.MaxValue) : Stream
{
    private Exception? _readError;
    private Exception? _writeError;
    private int _writesInFlight;
    private TaskCompletionSource? _settled;   // a read's wait for the writes in flight to end

    /// <summary>
    /// The connection failure behind the end of the stream: the error that ended reading (reported
    /// as end of stream), else one that failed a write (the reset a send took, which leaves the read
    /// a plain end); null while nothing failed.
    /// </summary>
    public Exception? ConnectionError => Volatile.Read(ref _readError) ?? Volatile.Read(ref _writeError);

    public Stream Inner => inner;

    /// <summary>Told of every read that returned bytes; none by default.</summary>
    public TransportActivity? Activity { get; set; }

    public override bool CanRead => inner.CanRead;

    public override bool CanSeek => false;

    public override bool CanWrite => inner.CanWrite;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        try
        {
            var count = inner.Read(buffer[..Math.Min(buffer.Length, maximumReadSize)]);
            if (count > 0)
            {
                Activity?.Received(count);
            }

            return count;
        }
        catch (Exception ex) when (IsConnectionFailure(ex))
        {
            return EndOfStream(ex);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // A reader may hand over a larger buffer than a read should take (a pooled block, an array
        // rounded up to a power of two): the read size is this stream's to keep.
        buffer = buffer[..Math.Min(buffer.Length, maximumReadSize)];
        ValueTask<int> read;
        try
        {
            read = inner.ReadAsync(buffer, cancellationToken);
        }
        catch (Exception ex) when (IsConnectionFailure(ex))
        {
            return ValueTask.FromResult(EndOfStream(ex));
        }

        if (!read.IsCompletedSuccessfully)
        {
            return AwaitReadAsync(read, waitsForData: buffer.IsEmpty);
        }

        // Consumed here, once: a value task may be backed by a reusable source (a socket's), which
        // a second consumer would find already recycled for the next operation.
        var count = read.Result;
        if (count > 0)
        {
            Activity?.Received(count);
        }

        return EndsWhileWriting(count, waitsForData: buffer.IsEmpty) ? SettleThenEndAsync() : ValueTask.FromResult(count);
    }

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        => inner.WriteAsync(buffer, cancellationToken);

    /// <summary>The send loop starts a write to the inner stream or socket.</summary>
    public void WriteStarted() => Interlocked.Increment(ref _writesInFlight);

    /// <summary>The send loop's write ended, failed with <paramref name="error"/> when not null.</summary>
    public void WriteEnded(Exception? error)
    {
        if (error is not null && IsConnectionFailure(error))
        {
            Interlocked.CompareExchange(ref _writeError, error, null);
        }

        Interlocked.Decrement(ref _writesInFlight);
        WakeIfSettled();
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return inner.DisposeAsync();
    }

    private static bool IsConnectionFailure(Exception ex) => ex is IOException or System.Net.Sockets.SocketException;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> AwaitReadAsync(ValueTask<int> read, bool waitsForData)
    {
        int count;
        try
        {
            count = await read.ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionFailure(ex))
        {
            return EndOfStream(ex);
        }

        if (count > 0)
        {
            Activity?.Received(count);
        }

        return EndsWhileWriting(count, waitsForData) ? await SettleThenEndAsync().ConfigureAwait(false) : count;
    }

    /// <summary>
    /// Whether a read's <paramref name="count"/> reports the end of the stream while a write is
    /// still waiting (see <see cref="SettleThenEndAsync"/>). A zero-byte read (a wait for data)
    /// returns 0 without meaning the end.
    /// </summary>
    private bool EndsWhileWriting(int count, bool waitsForData) => count == 0 && !waitsForData && IsWriteInFlight;

    /// <summary>Whether a write is waiting in the operating system and has not failed (yet).</summary>
    private bool IsWriteInFlight => Volatile.Read(ref _writesInFlight) > 0 && Volatile.Read(ref _writeError) is null;

    /// <summary>How long a read that found the end waits for a write in flight to settle.</summary>
    private static readonly TimeSpan SettleLimit = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Reports the end of the stream once a write still waiting has settled (briefly: at most
    /// about 100 ms). A reset goes to one call only; when a blocked send takes it, the read sees a
    /// plain end, and the send's error is what ended the connection: let it be recorded first.
    /// </summary>
    private async ValueTask<int> SettleThenEndAsync()
    {
        if (!IsWriteInFlight)
        {
            return 0;
        }

        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var settled = (Interlocked.CompareExchange(ref _settled, waiter, null) ?? waiter).Task;

        // The write may have ended before the wait was published: then nobody else wakes it.
        WakeIfSettled();
        try
        {
            await settled.WaitAsync(SettleLimit).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The write is still blocked: report the end anyway.
        }

        return 0;
    }

    /// <summary>Wakes the read waiting for the writes in flight, once none is (or one failed).</summary>
    private void WakeIfSettled()
    {
        if (!IsWriteInFlight)
        {
            Interlocked.Exchange(ref _settled, null)?.TrySetResult();
        }
    }

    private int EndOfStream(Exception error)
    {
        Interlocked.CompareExchange(ref _readError, error, null);
        return 0;
    }
}
