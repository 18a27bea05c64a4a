using System.Net;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A connection over a Unix-domain stream socket that passes file descriptors
/// (<see cref="TransportOptions.AllowDescriptorPassing"/>). Every receive is a <c>recvmsg</c> that
/// collects the descriptors arriving with the bytes (<see cref="UnixDescriptorStream"/>); they wait,
/// at the position of the byte they came with, until the bytes' reader takes them
/// (<see cref="TakeDescriptors"/>) or moves past them (<see cref="CloseDescriptorsBefore"/>: closed).
/// Descriptors to send are attached to a position of the outbound stream
/// (<see cref="Attach"/>): the send loop sends the byte there alone with them (<c>SCM_RIGHTS</c>),
/// then releases their handles.
/// </summary>
internal sealed class UnixDescriptorConnection : OwnedTransportConnection
{
    /// <summary>How long the send loop waits before it looks again at a socket whose buffer was full for a descriptor send.</summary>
    private static readonly TimeSpan FullBufferRetry = TimeSpan.FromMilliseconds(1);

    private readonly Socket _socket;
    private readonly ReceivedDescriptors _received;
    private readonly Lock _attachLock = new();
    private readonly Queue<OutboundDescriptors> _attached = new(); // in stream order; guarded by _attachLock
    private bool _released;                                        // guarded by _attachLock
    private long _sentOffset;                                      // the send loop's own

    private UnixDescriptorConnection(Socket socket, ReceivedDescriptors received, TransportOptions options)
        : base(new TransportStream(new UnixDescriptorStream(socket, received), options.ReceiveBufferSize), options)
    {
        _socket = socket;
        _received = received;
        LocalEndPoint = socket.LocalEndPoint;
        RemoteEndPoint = socket.RemoteEndPoint;
        StartSending();
    }

    public override EndPoint? LocalEndPoint { get; }

    public override EndPoint? RemoteEndPoint { get; }

    /// <summary>How many received descriptors are waiting to be taken.</summary>
    public int HeldDescriptors => _received.Count;

    /// <summary>Wraps a connected Unix-domain stream socket; the connection owns it.</summary>
    /// <exception cref="NotSupportedException">The operating system is not one this library passes descriptors on.</exception>
    public static UnixDescriptorConnection Create(Socket socket, TransportOptions options)
    {
        if (!UnixDescriptorInterop.IsSupported)
        {
            throw new NotSupportedException("Passing file descriptors is supported on 64-bit Linux only.");
        }

        return new UnixDescriptorConnection(socket, new ReceivedDescriptors(), options);
    }

    /// <summary>
    /// Sends <paramref name="descriptors"/> with the outbound byte at <see cref="OutboundDescriptors.Offset"/>
    /// (counted from the connection's first byte), and releases them once sent, or when the
    /// connection is released first. Attach in stream order.
    /// </summary>
    public void Attach(OutboundDescriptors descriptors)
    {
        lock (_attachLock)
        {
            if (!_released)
            {
                _attached.Enqueue(descriptors);
                return;
            }
        }

        descriptors.Release();
    }

    /// <summary>
    /// Takes the descriptors that arrived with inbound bytes in [<paramref name="start"/>, <paramref name="end"/>)
    /// as handles the caller owns (closes those before <paramref name="start"/> nobody took).
    /// </summary>
    public SafeFileHandle[] TakeDescriptors(long start, long end) => _received.Take(start, end);

    /// <summary>Closes the descriptors that arrived with inbound bytes before <paramref name="end"/> and were not taken.</summary>
    public void CloseDescriptorsBefore(long end) => _received.CloseBefore(end);

    protected override ValueTask SendAsync(List<ArraySegment<byte>> chunks, long bytes)
    {
        if (!IsAttachedBefore(_sentOffset + bytes))
        {
            // No descriptor goes with these bytes: sent as a plain socket connection sends them.
            _sentOffset += bytes;
            return SocketTransportConnection.SendGatheredAsync(_socket, chunks, bytes);
        }

        return SendWithAttachedAsync(chunks);
    }

    /// <summary>Sends <paramref name="chunks"/> chunk by chunk, each byte that descriptors are attached to alone with them.</summary>
    private async ValueTask SendWithAttachedAsync(List<ArraySegment<byte>> chunks)
    {
        try
        {
            foreach (var chunk in chunks)
            {
                var rest = chunk.AsMemory();
                while (!rest.IsEmpty)
                {
                    var attached = NextAttachedBefore(_sentOffset + rest.Length);
                    var plain = attached is null ? rest.Length : (int)Math.Max(0, attached.Offset - _sentOffset);
                    for (var left = rest[..plain]; !left.IsEmpty;)
                    {
                        left = left[await _socket.SendAsync(left, SocketFlags.None).ConfigureAwait(false)..];
                    }

                    rest = rest[plain..];
                    _sentOffset += plain;
                    if (attached is not null)
                    {
                        await SendAttachedAsync(rest.Span[0], attached).ConfigureAwait(false);
                        rest = rest[1..];
                        _sentOffset++;
                    }
                }
            }
        }
        catch (SocketException ex)
        {
            throw SocketTransportConnection.SendFailed(ex);
        }
    }

    protected override ValueTask ShutdownSendAsync(CancellationToken cancellationToken) => SocketTransportConnection.ShutdownSend(_socket);

    protected override void Release()
    {
        lock (_attachLock)
        {
            _released = true;
        }

        ReleaseAttached();
        try
        {
            Stream.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
        {
            // Disposing a broken socket may report the breakage again; it is released either way.
        }

        _received.CloseAll();
    }

    /// <summary>Whether descriptors are attached to a byte before <paramref name="end"/>.</summary>
    private bool IsAttachedBefore(long end)
    {
        lock (_attachLock)
        {
            return _attached.TryPeek(out var next) && next.Offset < end;
        }
    }

    /// <summary>The descriptors attached to a byte before <paramref name="end"/>, taken off the queue; null when none is.</summary>
    private OutboundDescriptors? NextAttachedBefore(long end)
    {
        lock (_attachLock)
        {
            return _attached.TryPeek(out var next) && next.Offset < end ? _attached.Dequeue() : null;
        }
    }

    /// <summary>Sends <paramref name="data"/> alone with <paramref name="attached"/>, waiting for room in the socket's buffer; then releases them.</summary>
    private async ValueTask SendAttachedAsync(byte data, OutboundDescriptors attached)
    {
        try
        {
            while (!UnixDescriptorInterop.SendWithDescriptors(_socket.SafeHandle, data, attached.Descriptors))
            {
                await Task.Delay(FullBufferRetry).ConfigureAwait(false);
            }
        }
        catch (ObjectDisposedException ex)
        {
            throw new IOException("Unable to write data to the transport connection: it was closed.", ex);
        }
        finally
        {
            attached.Release();
        }
    }

    private void ReleaseAttached()
    {
        while (true)
        {
            OutboundDescriptors? next;
            lock (_attachLock)
            {
                if (!_attached.TryDequeue(out next))
                {
                    return;
                }
            }

            next.Release();
        }
    }
}
