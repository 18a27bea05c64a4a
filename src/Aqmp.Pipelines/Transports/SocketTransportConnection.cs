using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A connection over a plain stream socket (TCP or Unix-domain). Its reader reads the socket
/// inline through a <see cref="NetworkStream"/>; its send loop sends everything flushed since its
/// last turn in one socket call, gathered from the buffer's segments when there are several.
/// </summary>
/// <remarks>
/// The socket is switched to non-blocking once its stream is made, so that each batch is first
/// offered to the kernel synchronously: a send the kernel takes whole needs no asynchronous socket
/// operation, whose state the socket would otherwise keep for its lifetime (an idle connection
/// holds none).
/// </remarks>
internal sealed class SocketTransportConnection : OwnedTransportConnection
{
    private readonly Socket _socket;

    /// <summary>Wraps a connected stream socket; the connection owns it.</summary>
    public SocketTransportConnection(Socket socket, TransportOptions options)
        : base(new TransportStream(new NetworkStream(socket, ownsSocket: true), options.ReceiveBufferSize), options)
    {
        _socket = socket;
        socket.Blocking = false;
        LocalEndPoint = socket.LocalEndPoint;
        RemoteEndPoint = socket.RemoteEndPoint;
        StartSending();
    }

    public override EndPoint? LocalEndPoint { get; }

    public override EndPoint? RemoteEndPoint { get; }

    protected override ValueTask SendAsync(List<ArraySegment<byte>> chunks, long bytes) => SendGatheredAsync(_socket, chunks, bytes);

    /// <summary>
    /// Sends every byte of <paramref name="chunks"/> on <paramref name="socket"/>: one gathered send
    /// when there are several, then the rest chunk by chunk; a socket failure is reported as the
    /// <see cref="IOException"/> a <see cref="NetworkStream"/> raises. A non-blocking socket is
    /// first offered everything synchronously, and only what it did not take is sent asynchronously.
    /// </summary>
    internal static ValueTask SendGatheredAsync(Socket socket, List<ArraySegment<byte>> chunks, long bytes)
    {
        if (socket.Blocking)
        {
            return SendAsynchronouslyAsync(socket, chunks, bytes);
        }

        int sent;
        SocketError error;
        try
        {
            sent = chunks.Count == 1 ? socket.Send(chunks[0].AsSpan(), SocketFlags.None, out error) : socket.Send(chunks, SocketFlags.None, out error);
        }
        catch (SocketException ex)
        {
            return ValueTask.FromException(SendFailed(ex));
        }

        if (error is not (SocketError.Success or SocketError.WouldBlock))
        {
            return ValueTask.FromException(SendFailed(new SocketException((int)error)));
        }

        if (error == SocketError.Success && sent == bytes)
        {
            return ValueTask.CompletedTask;
        }

        if (error == SocketError.Success)
        {
            Skip(chunks, sent);
            bytes -= sent;
        }

        return SendAsynchronouslyAsync(socket, chunks, bytes);
    }

    /// <summary>The asynchronous send of <see cref="SendGatheredAsync"/>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask SendAsynchronouslyAsync(Socket socket, List<ArraySegment<byte>> chunks, long bytes)
    {
        try
        {
            if (chunks.Count > 1)
            {
                var sent = await socket.SendAsync(chunks, SocketFlags.None).ConfigureAwait(false);
                if (sent == bytes)
                {
                    return;
                }

                Skip(chunks, sent);
            }

            foreach (var chunk in chunks)
            {
                var rest = chunk.AsMemory();
                while (!rest.IsEmpty)
                {
                    rest = rest[await socket.SendAsync(rest, SocketFlags.None).ConfigureAwait(false)..];
                }
            }
        }
        catch (SocketException ex)
        {
            throw SendFailed(ex);
        }
    }

    protected override ValueTask ShutdownSendAsync(CancellationToken cancellationToken) => ShutdownSend(_socket);

    /// <summary>A failed socket send as a <see cref="NetworkStream"/> reports it: the session sees one kind of error from every transport.</summary>
    internal static IOException SendFailed(SocketException error)
        => new($"Unable to write data to the transport connection: {error.Message}.", error);

    /// <summary>Closes <paramref name="socket"/>'s sending direction after everything was sent; a peer already gone is no error.</summary>
    internal static ValueTask ShutdownSend(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The peer is already gone: everything was sent, nothing is left to close.
        }

        return ValueTask.CompletedTask;
    }

    protected override void Release()
    {
        try
        {
            Stream.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
        {
            // Disposing a broken socket may report the breakage again; it is released either way.
        }
    }

    /// <summary>Drops the first <paramref name="sent"/> bytes of <paramref name="chunks"/> (after a partial gathered send).</summary>
    private static void Skip(List<ArraySegment<byte>> chunks, long sent)
    {
        while (sent > 0)
        {
            var first = chunks[0];
            if (sent < first.Count)
            {
                chunks[0] = first[(int)sent..];
                return;
            }

            sent -= first.Count;
            chunks.RemoveAt(0);
        }
    }
}
