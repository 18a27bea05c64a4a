using System.IO.Pipelines;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A connection over a socket or stream that this library owns: its reader reads the stream
/// inline, on the reader's own thread, and its one send loop takes everything flushed to its
/// <see cref="SendBuffer"/> and sends it in one call. A subclass says how to send (a gathered
/// socket send, stream writes) and how to close its sending direction.
/// </summary>
/// <remarks>
/// "Sent" means the send loop has handed the bytes to the socket or stream; a graceful close
/// completes the buffer, waits for the send loop to drain it and end, closes the sending
/// direction, lingers, and releases.
/// </remarks>
internal abstract class OwnedTransportConnection : TransportConnection
{
    /// <summary>The least free space a read is made into; with less left in the last buffer, a new one is rented.</summary>
    private const int MinimumReadSize = 4096;

    private readonly SendBuffer _output;
    private readonly List<ArraySegment<byte>> _chunks = [];
    private readonly TimeSpan _lingerTimeout;
    private Task _sendLoop = Task.CompletedTask;
    private int _released;
    private int _closing;

    protected OwnedTransportConnection(TransportStream stream, TransportOptions options)
    {
        Stream = stream;
        _output = new SendBuffer(options.SendPipeOptions);
        _lingerTimeout = options.LingerTimeout;
        Pipe = new DuplexPipe(CreateReader(stream, options), _output);
    }

    public sealed override IDuplexPipe Pipe { get; }

    public sealed override Exception? InputError => Stream.ConnectionError;

    /// <summary>Told of every read that returned bytes and every batch sent; none by default. Set it before the connection is used.</summary>
    internal TransportActivity? Activity
    {
        get => Stream.Activity;
        set => Stream.Activity = value;
    }

    /// <summary>The stream the reader reads.</summary>
    protected TransportStream Stream { get; }

    public sealed override async ValueTask CloseAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0 || Volatile.Read(ref _released) != 0)
        {
            return;
        }

        try
        {
            // Delivered: the buffer is complete and the send loop has drained it and ended.
            _output.Complete();
            await _sendLoop.WaitAsync(cancellationToken).ConfigureAwait(false);
            await _output.WaitUntilSentAsync(cancellationToken).ConfigureAwait(false);
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
            : _output.WaitUntilSentAsync(cancellationToken);

    public sealed override void Abort()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        _output.Complete();
        Release();
        try
        {
            Pipe.Input.Complete();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Already completed, or left broken by a failed connection: Abort never throws.
        }
    }

    /// <summary>Starts the send loop; a subclass calls it once its constructor has set up what <see cref="SendAsync"/> uses.</summary>
    protected void StartSending() => _sendLoop = SendLoopAsync();

    /// <summary>Sends <paramref name="bytes"/> bytes held by <paramref name="chunks"/>, in order, all of them, or throws.</summary>
    /// <param name="chunks">The bytes, in order; valid until the returned task completes.</param>
    /// <param name="bytes">Their total length.</param>
    /// <returns>A task that completes when the socket or stream has taken every byte.</returns>
    protected abstract ValueTask SendAsync(List<ArraySegment<byte>> chunks, long bytes);

    /// <summary>Closes the sending direction after everything was sent (TLS close_notify, a socket shutdown, or both).</summary>
    /// <param name="cancellationToken">Abandons the shutdown.</param>
    /// <returns>A task that completes when the shutdown was sent.</returns>
    protected virtual ValueTask ShutdownSendAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Releases the socket or stream. Called once; must not throw.</summary>
    protected abstract void Release();

    private static PipeReader CreateReader(TransportStream stream, TransportOptions options)
        => PipeReader.Create(stream, new StreamPipeReaderOptions(
            pool: options.ReceivePool,
            bufferSize: options.ReceiveBufferSize,
            minimumReadSize: Math.Min(MinimumReadSize, options.ReceiveBufferSize),
            leaveOpen: true,
            useZeroByteReads: options.WaitForDataBeforeAllocatingBuffer));

    /// <summary>
    /// The send loop: parks until bytes are flushed, sends everything flushed by then in one call,
    /// and looks again; ends when the buffer is complete and drained, or at the first failure
    /// (which the buffer then reports to every flush and waiter). Never faults.
    /// </summary>
    private async Task SendLoopAsync()
    {
        // On the thread pool from here on, as Task.Run would start it, without the task it makes.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        try
        {
            while (await _output.WaitForDataAsync().ConfigureAwait(false))
            {
                var bytes = _output.CollectUnsent(_chunks);
                Stream.WriteStarted();
                try
                {
                    await SendAsync(_chunks, bytes).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    Stream.WriteEnded(ex);
                    throw;
                }

                Stream.WriteEnded(null);
                Stream.Activity?.Sent(bytes);
                _output.AdvanceSent(bytes);
            }
        }
        catch (Exception ex)
        {
            _output.Fail(ex);
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
}
