using System.IO.Pipelines;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A transport connection over a socket or stream that this library owns: it knows how many bytes
/// were written and how many the socket or stream has taken, which is what a graceful close
/// waits on, since the duplex-pipe adapters send from a background loop of their own.
/// </summary>
internal abstract class OwnedTransportConnection : TransportConnection
{
    private const int YieldsBeforeSleeping = 16;

    private readonly CountingPipeWriter _output;
    private readonly TimeSpan _lingerTimeout;
    private int _released;
    private int _closing;

    protected OwnedTransportConnection(IDuplexPipe inner, TimeSpan lingerTimeout)
    {
        _output = new CountingPipeWriter(inner.Output);
        _lingerTimeout = lingerTimeout;
        Pipe = new DuplexPipe(inner.Input, _output);
    }

    public sealed override IDuplexPipe Pipe { get; }

    /// <summary>Bytes the underlying socket or stream has accepted so far.</summary>
    protected abstract long BytesDelivered { get; }

    public sealed override async ValueTask CloseAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0 || Volatile.Read(ref _released) != 0)
        {
            return;
        }

        try
        {
            await WaitUntilDeliveredAsync(cancellationToken).ConfigureAwait(false);
            await _output.CompleteAsync().ConfigureAwait(false);
            await ShutdownSendAsync(cancellationToken).ConfigureAwait(false);
            await LingerAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Abort();
        }
    }

    public sealed override ValueTask WaitUntilSentAsync(CancellationToken cancellationToken = default)
        => Volatile.Read(ref _closing) != 0 || Volatile.Read(ref _released) != 0
            ? ValueTask.FromException(new ObjectDisposedException(GetType().Name, "The connection is closing or closed."))
            : WaitUntilDeliveredAsync(cancellationToken);

    public sealed override void Abort()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        Release();
        TryComplete(Pipe.Input.Complete);
        TryComplete(_output.Complete);
    }

    /// <summary>Closes the sending direction after everything was delivered (TLS close_notify, a socket shutdown, or both).</summary>
    /// <param name="cancellationToken">Abandons the shutdown.</param>
    /// <returns>A task that completes when the shutdown was sent.</returns>
    protected virtual ValueTask ShutdownSendAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Releases the socket or stream. Called once; must not throw.</summary>
    protected abstract void Release();

    private async ValueTask WaitUntilDeliveredAsync(CancellationToken cancellationToken)
    {
        var target = _output.BytesWritten;
        for (var round = 0; BytesDelivered < target; round++)
        {
            // A flush of nothing reports whether the send loop is still alive and rethrows its error.
            var flush = await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (flush.IsCompleted && BytesDelivered < target)
            {
                throw new IOException($"The connection closed with {target - BytesDelivered} of {target} written bytes not sent.");
            }

            if (round < YieldsBeforeSleeping)
            {
                await Task.Yield();
            }
            else
            {
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async ValueTask LingerAsync(CancellationToken cancellationToken)
    {
        if (_lingerTimeout <= TimeSpan.Zero)
        {
            return;
        }

        using var linger = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        linger.CancelAfter(_lingerTimeout);
        var input = Pipe.Input;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(linger.Token).ConfigureAwait(false);
                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The peer kept the connection open past the linger timeout: close anyway.
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // The peer reset while we lingered: there is nothing left to protect.
        }
    }

    private static void TryComplete(Action<Exception?> complete)
    {
        try
        {
            complete(null);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Already completed, completed underneath by the adapter's own loop, or left broken by
            // a failed connection: nothing more to release here, and Abort never throws.
        }
    }
}
