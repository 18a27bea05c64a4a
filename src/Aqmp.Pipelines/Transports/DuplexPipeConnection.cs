using System.Buffers;
using System.IO.Pipelines;
using System.Net;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A transport over an existing <see cref="IDuplexPipe"/> (in-memory pipes, a pipe of another
/// framework), or over the pipe of a <see cref="TransportConnection"/> implemented outside this
/// library (then closing and aborting end that connection too). Its reader is the pipe's own input. Its writer is a <see cref="SendBuffer"/> whose
/// send loop copies everything flushed since its last turn into the pipe's output and flushes it
/// once, so that the pipe's reader is woken once per batch, not once per message; the pipe's own
/// backpressure holds the send loop back. Closing completes both ends of the pipe; aborting
/// still hands the pipe what was flushed (writing into a pipe cannot block, only its flush can),
/// without waiting for the pipe's reader.
/// </summary>
internal sealed class DuplexPipeConnection : TransportConnection
{
    private readonly IDuplexPipe _inner;
    private readonly TransportConnection? _wrapped;
    private readonly SendBuffer _output;
    private readonly Task _sendLoop;
    private int _released;
    private int _aborted;

    /// <summary>Runs a send loop of its own into <paramref name="pipe"/>'s output.</summary>
    /// <param name="pipe">The pipe.</param>
    /// <param name="options">The send buffer's options.</param>
    /// <param name="wrapped">The connection <paramref name="pipe"/> belongs to, closed or aborted after the pipe; or null.</param>
    public DuplexPipeConnection(IDuplexPipe pipe, TransportOptions options, TransportConnection? wrapped = null)
    {
        _inner = pipe;
        _wrapped = wrapped;
        _output = new SendBuffer(options.SendPipeOptions);
        Pipe = new DuplexPipe(pipe.Input, _output);
        _sendLoop = Task.Run(SendLoopAsync);
    }

    public override IDuplexPipe Pipe { get; }

    public override EndPoint? LocalEndPoint => _wrapped?.LocalEndPoint;

    public override EndPoint? RemoteEndPoint => _wrapped?.RemoteEndPoint;

    public override Exception? InputError => _wrapped?.InputError;

    public override async ValueTask CloseAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        try
        {
            _output.Complete();
            await _sendLoop.WaitAsync(cancellationToken).ConfigureAwait(false);
            await _output.WaitUntilSentAsync(cancellationToken).ConfigureAwait(false);
            await _inner.Input.CompleteAsync().ConfigureAwait(false);
            if (_wrapped is not null)
            {
                await _wrapped.CloseAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            Discard();
            throw;
        }
    }

    public override ValueTask WaitUntilSentAsync(CancellationToken cancellationToken = default)
        => Volatile.Read(ref _released) != 0
            ? ValueTask.FromException(new ObjectDisposedException(GetType().Name, "The connection is closing or closed."))
            : _output.WaitUntilSentAsync(cancellationToken);

    public override void Abort()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        Discard();
    }

    /// <summary>Stops waiting for the pipe's reader and completes the input; the send loop hands over what was flushed and completes the output.</summary>
    private void Discard()
    {
        Volatile.Write(ref _aborted, 1);
        _output.Complete();
        _inner.Output.CancelPendingFlush();
        _inner.Input.Complete();
        _wrapped?.Abort();
    }

    /// <summary>
    /// Copies what was flushed into the pipe's output and flushes it, until the buffer is complete
    /// and drained; once the connection is aborted, copies the rest without waiting for flushes.
    /// Then completes the pipe's output, which is this loop's alone. Never faults.
    /// </summary>
    private async Task SendLoopAsync()
    {
        var output = _inner.Output;
        var chunks = new List<ArraySegment<byte>>();
        try
        {
            while (await _output.WaitForDataAsync().ConfigureAwait(false))
            {
                var bytes = _output.CollectUnsent(chunks);
                foreach (var chunk in chunks)
                {
                    output.Write(chunk);
                }

                var flush = Volatile.Read(ref _aborted) == 0 ? await output.FlushAsync().ConfigureAwait(false) : default;
                _output.AdvanceSent(bytes);
                if (flush.IsCompleted)
                {
                    throw new IOException("The transport stopped accepting outbound data: the connection is closed.");
                }
            }
        }
        catch (Exception ex)
        {
            _output.Fail(ex);
        }

        try
        {
            await output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Completed underneath by its owner: nothing more to release.
        }
    }
}
