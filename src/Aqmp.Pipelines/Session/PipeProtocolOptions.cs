using System.Buffers;
using System.IO.Pipelines;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

/// <summary>
/// Buffering, backpressure and shutdown settings of a <see cref="PipeProtocol{TMessage}"/>.
/// </summary>
public sealed record PipeProtocolOptions
{
    /// <summary>
    /// The most outbound bytes framed and not yet flushed: replies the read loop holds back to
    /// flush together, and a burst sent with <c>SendManyAsync</c>, are flushed on the way when
    /// they reach this size, so that a batch never outruns the transport's backpressure by more
    /// than this. Default 64 KiB.
    /// </summary>
    public int OutboundBatchBytes { get; init; } = 64 * 1024;

    /// <summary>
    /// The most bytes one read takes from a socket or stream. The read loop reads only when it
    /// has handled every complete frame it holds, so a session buffers at most a partial frame
    /// plus one read of inbound bytes: the peer is held back by the operating system's socket
    /// buffer, not by a queue of ours. Larger reads mean fewer system calls and fewer frames
    /// straddling two buffers (the framers' slow path). Default 64 KiB.
    /// </summary>
    public int ReceiveBufferSize { get; init; } = TransportOptions.DefaultReceiveBufferSize;

    /// <summary>
    /// Whether a read waits for the first inbound byte before it rents its buffer (a zero-byte
    /// read), as Kestrel's sockets do: an idle session then holds no receive buffer. Taken only
    /// when nothing is buffered, so a busy session rarely pays the extra call. Default true.
    /// </summary>
    public bool WaitForDataBeforeAllocatingBuffer { get; init; } = true;

    /// <summary>
    /// Unsent outbound bytes at which a flush waits for the socket, and with it every sender
    /// (backpressure): outbound memory stays below this plus <see cref="OutboundBatchBytes"/> and
    /// one message. Default 1 MiB.
    /// </summary>
    public long SendPauseThreshold { get; init; } = 1024 * 1024;

    /// <summary>Unsent outbound bytes below which a waiting flush resumes. Default 512 KiB.</summary>
    public long SendResumeThreshold { get; init; } = 512 * 1024;

    /// <summary>
    /// The smallest buffer segment the pipes rent. Larger segments mean fewer frames straddle two
    /// segments (the framers' slow path) and fewer socket calls: the send side writes one segment
    /// per call. Default 64 KiB, which also lets a default 64 KiB read come from the session's
    /// pool (the README's Performance section compares it with 16 KiB).
    /// </summary>
    public int MinimumSegmentSize { get; init; } = 64 * 1024;

    /// <summary>
    /// How long a graceful disconnect keeps draining inbound bytes after sending everything,
    /// waiting for the peer to close (see <see cref="TransportOptions.LingerTimeout"/>). Default 500 ms.
    /// </summary>
    public TimeSpan LingerTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// How long <see cref="PipeProtocol{TMessage}.DisposeAsync"/> lets a graceful disconnect drain
    /// before it aborts the transport (what is not flushed by then is discarded and logged).
    /// <see cref="PipeProtocol{TMessage}.DisconnectAsync"/> is bounded by its caller's token instead.
    /// <see cref="Timeout.InfiniteTimeSpan"/> waits as long as the peer takes. Default 10 s.
    /// </summary>
    public TimeSpan DisposeDrainTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Input first: when a write fails (the peer closed or reset the connection), how long the read
    /// loop may go on delivering what had already arrived, until it reaches the end of the input,
    /// before the session stops it. A peer that answered and then closed loses none of its last
    /// messages to our next write; replies its handlers try to send meanwhile are not sent (each
    /// ends its handler, as in any disconnect) and delivery goes on. <see cref="TimeSpan.Zero"/>
    /// stops reading at once; at most <see cref="int.MaxValue"/> milliseconds. Default 2 s.
    /// </summary>
    public TimeSpan InputDrainTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How many pending connections a listening socket queues before one is accepted. Default 1.</summary>
    public int ListenBacklog { get; init; } = 1;

    /// <summary>
    /// How long <see cref="PipeProtocol{TMessage}.ConnectAsync(System.Net.EndPoint, System.Net.Security.SslClientAuthenticationOptions?, CancellationToken)"/>
    /// may take to connect the transport (the socket, then the TLS handshake when there is one),
    /// before <see cref="PipeProtocol{TMessage}.EstablishSessionAsync"/> runs. When it runs out, the
    /// connect fails with a <see cref="ConnectException"/> (<see cref="ConnectException.ConnectionPhase"/>)
    /// wrapping a <see cref="TimeoutException"/>, and the runstate is back to <see cref="Runstate.Idle"/>;
    /// the caller's own cancellation still surfaces as <see cref="OperationCanceledException"/>.
    /// It does not bound the handshake, accepting a peer, or opening an existing socket, stream or pipe.
    /// Finite values must be positive and at most <see cref="MaximumTimeout"/>;
    /// <see cref="Timeout.InfiniteTimeSpan"/> (the default) leaves the attempt to the caller's token
    /// and the operating system's own connect timeout.
    /// </summary>
    public TimeSpan ConnectTimeout { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>
    /// Whether the session passes file descriptors with its messages
    /// (<see cref="PipeProtocol{TMessage}.SendWithDescriptorsAsync"/>,
    /// <see cref="MessageContext{TMessage}.TakeDescriptors"/>); only a plain Unix-domain socket can, on
    /// 64-bit Linux (see <see cref="TransportOptions.AllowDescriptorPassing"/>). Connecting,
    /// listening or opening over TCP, TLS, a stream or a pipe with this set raises
    /// <see cref="NotSupportedException"/>. Default false.
    /// </summary>
    public bool AllowDescriptorPassing { get; init; }

    /// <summary>The options used when none are given.</summary>
    public static PipeProtocolOptions Default { get; } = new();

    /// <summary>The longest finite timeout a setting accepts: <see cref="int.MaxValue"/> milliseconds (about 24.8 days).</summary>
    public static TimeSpan MaximumTimeout { get; } = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>Checks that every setting is in range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(OutboundBatchBytes, 1, nameof(OutboundBatchBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(ReceiveBufferSize, 1, nameof(ReceiveBufferSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(SendPauseThreshold, 1, nameof(SendPauseThreshold));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(SendResumeThreshold, SendPauseThreshold, nameof(SendResumeThreshold));
        ArgumentOutOfRangeException.ThrowIfLessThan(MinimumSegmentSize, 1, nameof(MinimumSegmentSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(LingerTimeout, TimeSpan.Zero, nameof(LingerTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(ListenBacklog, 1, nameof(ListenBacklog));
        ArgumentOutOfRangeException.ThrowIfLessThan(InputDrainTimeout, TimeSpan.Zero, nameof(InputDrainTimeout));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(InputDrainTimeout, TimeSpan.FromMilliseconds(int.MaxValue), nameof(InputDrainTimeout));
        if (DisposeDrainTimeout != Timeout.InfiniteTimeSpan)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(DisposeDrainTimeout, TimeSpan.Zero, nameof(DisposeDrainTimeout));
        }

        if (ConnectTimeout != Timeout.InfiniteTimeSpan)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ConnectTimeout, TimeSpan.Zero, nameof(ConnectTimeout));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(ConnectTimeout, MaximumTimeout, nameof(ConnectTimeout));
        }
    }

    /// <summary>The transport settings these options imply.</summary>
    /// <remarks>
    /// Inbound bytes are read by the session's read loop itself when it has handled what it holds
    /// (see <see cref="ReceiveBufferSize"/>), so a peer that never ends its frame is held to the
    /// framer's limit (plus one byte, for a line framer's CR) plus one read.
    /// </remarks>
    /// <param name="pool">
    /// Where the send pipe rents its segments, and reads too when <see cref="ReceiveBufferSize"/>
    /// fits in one of its blocks; the shared array pool when null. A session passes its own
    /// <see cref="SegmentPool"/> of <see cref="MinimumSegmentSize"/> blocks.
    /// </param>
    /// <returns>The transport options.</returns>
    public TransportOptions ToTransportOptions(MemoryPool<byte>? pool = null) => new()
    {
        SendPipeOptions = CreatePipeOptions(pool, SendPauseThreshold, SendResumeThreshold),
        ReceiveBufferSize = ReceiveBufferSize,
        ReceivePool = pool is not null && pool.MaxBufferSize >= ReceiveBufferSize ? pool : null,
        WaitForDataBeforeAllocatingBuffer = WaitForDataBeforeAllocatingBuffer,
        LingerTimeout = LingerTimeout,
        AllowDescriptorPassing = AllowDescriptorPassing,
    };

    /// <summary>
    /// A segment pool sized for one connection with these options: blocks of
    /// <see cref="MinimumSegmentSize"/>, keeping enough of them for the send pipe at its pause
    /// threshold (and for reads, when a read fits in a block).
    /// </summary>
    /// <returns>The pool.</returns>
    public SegmentPool CreateSegmentPool()
    {
        var blocks = (SendPauseThreshold / MinimumSegmentSize) + 16;
        return new SegmentPool(MinimumSegmentSize, (int)Math.Min(blocks, 4096));
    }

    private PipeOptions CreatePipeOptions(MemoryPool<byte>? pool, long pause, long resume) => new(
        pool: pool,
        readerScheduler: PipeScheduler.ThreadPool,
        writerScheduler: PipeScheduler.ThreadPool,
        pauseWriterThreshold: pause,
        resumeWriterThreshold: resume,
        minimumSegmentSize: MinimumSegmentSize,
        useSynchronizationContext: false);
}
