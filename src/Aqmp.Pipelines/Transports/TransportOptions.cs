using System.Buffers;
using System.IO.Pipelines;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// How a transport buffers and closes a connection.
/// </summary>
public sealed record TransportOptions
{
    private readonly int _receiveBufferSize = DefaultReceiveBufferSize;

    /// <summary>Options of the pipe that carries outbound bytes to the socket or stream.</summary>
    public PipeOptions SendPipeOptions { get; init; } = PipeOptions.Default;

    /// <summary>The default <see cref="ReceiveBufferSize"/>: 64 KiB.</summary>
    public const int DefaultReceiveBufferSize = 64 * 1024;

    /// <summary>
    /// The most bytes one read takes from the socket or stream. Inbound bytes are read by the
    /// connection's reader itself, when it asks for more (no background loop reads ahead), so the
    /// connection holds at most what its reader has not consumed plus one read.
    /// Default <see cref="DefaultReceiveBufferSize"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set below 1.</exception>
    public int ReceiveBufferSize
    {
        get => _receiveBufferSize;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _receiveBufferSize = value;
        }
    }

    /// <summary>
    /// Where inbound buffers are rented; the shared array pool when null (also used for buffers
    /// larger than the pool's <see cref="MemoryPool{T}.MaxBufferSize"/>).
    /// </summary>
    public MemoryPool<byte>? ReceivePool { get; init; }

    /// <summary>
    /// Whether a read with nothing buffered first waits for data with a zero-byte read and only
    /// then rents its buffer, so that an idle connection holds none. Default true.
    /// </summary>
    public bool WaitForDataBeforeAllocatingBuffer { get; init; } = true;

    /// <summary>
    /// How long a graceful close keeps reading (and discarding) inbound bytes after it has sent
    /// everything and closed the sending direction, waiting for the peer to close too. Closing a
    /// socket that still has unread inbound data makes the kernel reset the connection, which can
    /// destroy data the peer has not read yet; lingering avoids that. Zero closes at once.
    /// </summary>
    public TimeSpan LingerTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Whether connections pass file descriptors (<c>SCM_RIGHTS</c>): only Unix-domain stream sockets
    /// can, on 64-bit Linux. Every receive is then a <c>recvmsg</c> that collects the descriptors
    /// arriving with the bytes (a plain read would silently drop them), and descriptors can be sent
    /// with outbound bytes. Opening a TCP, TLS, stream or pipe connection with this set raises
    /// <see cref="NotSupportedException"/>. Default false.
    /// </summary>
    public bool AllowDescriptorPassing { get; init; }

    /// <summary>The options used when none are given.</summary>
    public static TransportOptions Default { get; } = new();
}
