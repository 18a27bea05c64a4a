using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A connection over a stream: an <see cref="SslStream"/> over a socket, or a caller's stream. Its
/// reader reads the stream inline; its send loop writes everything flushed since its last turn,
/// segment by segment, then flushes the stream once.
/// </summary>
internal sealed class StreamTransportConnection : OwnedTransportConnection
{
    private readonly Socket? _socket;

    private StreamTransportConnection(TransportStream stream, TransportOptions options, Socket? socket, EndPoint? local, EndPoint? remote)
        : base(stream, options)
    {
        _socket = socket ?? (stream.Inner as NetworkStream)?.Socket;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
        StartSending();
    }

    public override EndPoint? LocalEndPoint { get; }

    public override EndPoint? RemoteEndPoint { get; }

    /// <summary>Wraps a stream; <paramref name="socket"/>, when known, is the socket under it, shut down for sending on close.</summary>
    public static StreamTransportConnection Create(Stream stream, TransportOptions options, Socket? socket = null, EndPoint? local = null, EndPoint? remote = null)
        => new(new TransportStream(stream, options.ReceiveBufferSize), options, socket, local, remote);

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    protected override async ValueTask SendAsync(List<ArraySegment<byte>> chunks, long bytes)
    {
        var stream = Stream.Inner;
        foreach (var chunk in chunks)
        {
            await stream.WriteAsync(chunk.AsMemory()).ConfigureAwait(false);
        }

        await stream.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Closes the sending direction: TLS close_notify first when the stream is an
    /// <see cref="SslStream"/> (best effort), then the socket's shutdown (a FIN) when there is a socket.
    /// </summary>
    /// <remarks>
    /// OpenSSL does not allow <c>SSL_shutdown</c> while an <c>SSL_read</c> or <c>SSL_write</c> is in
    /// flight on the same connection. None is: reads are made by the connection's reader, which a
    /// graceful close requires to have stopped (the session stops its read loop and awaits it
    /// before closing), the send loop has ended, and the linger reads only after the shutdown.
    /// Without close_notify a TLS peer sees a truncated stream, which strict peers report as an error.
    /// </remarks>
    protected override async ValueTask ShutdownSendAsync(CancellationToken cancellationToken)
    {
        if (Stream.Inner is SslStream tls)
        {
            Task? shutdown = null;
            try
            {
                // ShutdownAsync itself may throw (OpenSSL: "shutdown while in init").
                shutdown = tls.ShutdownAsync();
                await shutdown.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (shutdown is { IsCompleted: false })
            {
                // Abandoned: it faults once the stream is released; observe that so it is not reported as unobserved.
                _ = shutdown.ContinueWith(static task => task.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                throw;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // close_notify is best effort. The peer is gone, or OpenSSL refuses it while TLS 1.3
                // post-handshake messages are in flight, or fails it with its own internal exception
                // type ("Operation failed with error - 5", SSL_ERROR_SYSCALL, seen once in ~1,000
                // closes over Unix sockets): the socket-level shutdown below still ends the stream.
            }
        }

        try
        {
            _socket?.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The peer is already gone: everything flushed was delivered, nothing is left to close.
        }
    }

    protected override void Release()
    {
        try
        {
            Stream.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // Disposing a broken stream may report the breakage again; it is released either way.
        }
    }
}
