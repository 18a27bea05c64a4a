using System.Net.Sockets;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// The inbound side of a Unix socket that passes descriptors, as a read-only stream: every read is
/// a <c>recvmsg</c> with a control buffer and <c>MSG_CMSG_CLOEXEC</c>, and the descriptors that
/// arrive are handed to <see cref="ReceivedDescriptors"/> at the stream position of the last byte of
/// the read they came with (a stream <c>recvmsg</c> stops after the buffer that carries them). A read with nothing to take waits for the socket with a zero-byte receive.
/// Owns the socket.
/// </summary>
internal sealed class UnixDescriptorStream(Socket socket, ReceivedDescriptors received) : Stream
{
    private readonly byte[] _control = new byte[UnixDescriptorInterop.ControlBufferSize];
    private readonly List<nint> _arrived = [];
    private long _position;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        while (true)
        {
            var read = TryReceive(buffer);
            if (read >= 0)
            {
                return read;
            }

            socket.Poll(-1, SelectMode.SelectRead);
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            // A wait for data (the pipe reader's zero-byte read): nothing is taken.
            return await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }

        while (true)
        {
            var read = TryReceive(buffer.Span);
            if (read >= 0)
            {
                return read;
            }

            await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            socket.Dispose();
            received.CloseAll();
        }

        base.Dispose(disposing);
    }

    /// <summary>One <c>recvmsg</c>: the bytes taken (0 at the end), or -1 when nothing is there yet.</summary>
    private int TryReceive(Span<byte> buffer)
    {
        var read = UnixDescriptorInterop.Receive(socket.SafeHandle, buffer, _control, _arrived);
        if (_arrived.Count > 0)
        {
            // A stream recvmsg joins buffers until it reaches one that carries descriptors, and
            // stops after it: they came with the last byte read.
            received.Add(_position + Math.Max(read, 1) - 1, _arrived);
            _arrived.Clear();
        }

        if (read > 0)
        {
            _position += read;
        }

        return read;
    }
}
