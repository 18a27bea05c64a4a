using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// The outbound side of a transport connection: a <see cref="PipeWriter"/> for whoever writes
/// (one writer at a time, as for any pipe writer) and a queue of flushed bytes for the
/// connection's one send loop, which takes everything flushed so far in one go, sends it, and
/// looks again before it parks.
/// </summary>
/// <remarks>
/// <para>
/// A flush only publishes: under <see cref="SyncRoot"/> it makes the bytes written so far visible
/// to the send loop and wakes the loop if, and only if, it is parked (a flag, no signal per
/// flush). The send loop takes that lock only to park, so a writer that already holds it (the
/// session's outbound writer frames under it) publishes with <see cref="FlushHeld"/> at the cost
/// of two plain memory writes. A flush waits only while more than the pause threshold is flushed
/// and not yet sent (backpressure), until the send loop brings that down to the resume threshold.
/// Memory obtained from <see cref="GetMemory"/> stays valid past an <see cref="Advance"/> until the
/// next <see cref="GetMemory"/>, so a writer may go on filling it.
/// </para>
/// <para>
/// <b>Idle blocks.</b> Once <see cref="ReleaseBlocksWhenIdle"/> was called, by a writer that writes
/// only under <see cref="SyncRoot"/>, the send loop gives its block back to the pool whenever it
/// parks with everything written sent, so that an idle connection holds no send buffer; the next
/// write rents one again. Without that call the writer's last block stays, as any pipe writer's does.
/// </para>
/// <para>
/// "Sent" means the socket or stream took the bytes. <see cref="WaitUntilSentAsync"/> waits for
/// everything flushed so far; once the writer completed, the send loop ends when everything is
/// sent (<see cref="WaitForDataAsync"/> returns false). If the send loop fails
/// (<see cref="Fail"/>), nothing more is sent: every later flush and every waiter gets that error.
/// </para>
/// </remarks>
internal sealed class SendBuffer : PipeWriter
{
    private readonly MemoryPool<byte>? _pool;
    private readonly int _segmentSize;
    private readonly long _pauseThreshold;
    private readonly long _resumeThreshold;
    private readonly AsyncAutoResetSignal _wake = new();
    private readonly Lock _sync = new();
    private readonly Lock _waitersLock = new();
    private readonly FlushWaiter _flushWaiter = new();

    // The writer's side (one writer at a time).
    private Segment? _tail;
    private long _written;            // bytes advanced so far
    private long _sentSeen;           // _sent when the writer last read it
    private long _frameStart = -1;    // _written when the open frame began; -1 when none is open
    private bool _frameSpansBlocks;   // the open frame has bytes in a block before the tail
    private int _framesInTail;        // frames begun in the tail block
    private long _publishLimit = long.MaxValue; // nothing past this is ever published (Withhold)

    // Shared between the writer and the send loop.
    private Segment? _first;
    private long _published;          // bytes flushed so far: what the send loop may take (written under _sync)
    private long _sent;               // bytes the send loop has sent so far
    private bool _parked;             // the send loop waits for bytes (guarded by _sync)
    private bool _releaseWhenIdle;    // every write happens under _sync: the loop may free idle blocks (guarded by _sync)
    private volatile bool _completed; // the writer completed: the loop drains and ends (set under _sync)
    private Exception? _failure;      // why the send loop stopped sending
    private int _hasWaiters;          // 1 while a flush or a WaitUntilSentAsync waits for the send loop

    // The send loop's side.
    private Segment? _head;
    private int _headOffset;

    // Guarded by _waitersLock.
    private bool _flushWaiting;
    private volatile bool _cancelNextFlush; // CancelPendingFlush came while no flush waited
    private List<(long Target, TaskCompletionSource Sent)>? _sentWaiters;

    /// <summary>Creates an empty buffer.</summary>
    /// <param name="options">Its pool, segment size, and pause and resume thresholds.</param>
    public SendBuffer(PipeOptions options)
    {
        _pool = options.Pool == MemoryPool<byte>.Shared ? null : options.Pool;
        _segmentSize = Math.Max(options.MinimumSegmentSize, 256);
        _pauseThreshold = options.PauseWriterThreshold > 0 ? options.PauseWriterThreshold : long.MaxValue;
        _resumeThreshold = Math.Min(options.ResumeWriterThreshold, _pauseThreshold);
    }

    /// <summary>
    /// The lock under which bytes are published and the send loop parks. A writer holding it
    /// flushes with <see cref="FlushHeld"/>.
    /// </summary>
    public Lock SyncRoot => _sync;

    /// <summary>The error that stopped the send loop, or null.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>Bytes flushed and not yet sent.</summary>
    public long Unsent => Volatile.Read(ref _published) - Volatile.Read(ref _sent);

    /// <summary>Bytes written so far (the position in the outbound stream of the next byte written). Writer's side.</summary>
    public long Written => _written;

    /// <inheritdoc/>
    public override bool CanGetUnflushedBytes => true;

    /// <inheritdoc/>
    public override long UnflushedBytes => _written - Volatile.Read(ref _published);

    // ---- The writer's side -------------------------------------------------------------------

    /// <inheritdoc/>
    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sizeHint);
        if (_tail is null || _tail.Memory.Length - _tail.End < Math.Max(sizeHint, 1))
        {
            AddSegment(Math.Max(sizeHint, 1));
        }

        return _tail!.Memory[_tail.End..];
    }

    /// <inheritdoc/>
    public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    /// <inheritdoc/>
    public override void Advance(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0)
        {
            return;
        }

        if (_tail is null || bytes > _tail.Memory.Length - _tail.End)
        {
            throw new InvalidOperationException("Advanced past the memory last obtained from GetMemory.");
        }

        Volatile.Write(ref _tail.End, _tail.End + bytes);
        _written += bytes;
    }

    /// <summary>
    /// Opens a frame: what is written from here until <see cref="EndFrame"/> can be taken back
    /// whole with <see cref="TryWithdrawFrame"/>, as long as it is not flushed and stays in one block.
    /// </summary>
    public void BeginFrame()
    {
        _frameStart = _written;
        _frameSpansBlocks = false;
        _framesInTail++;
    }

    /// <summary>Closes the open frame: its bytes stay, to be sent at the next flush.</summary>
    public void EndFrame() => _frameStart = -1;

    /// <summary>
    /// Takes back the bytes written since <see cref="BeginFrame"/> (a framer failed part-way) and
    /// closes the frame. Returns false, taking nothing back, when they reach into more than one
    /// block: the frame's start is then in a block the writer has left, and the stream is corrupt.
    /// </summary>
    /// <returns>Whether the frame's bytes were taken back.</returns>
    public bool TryWithdrawFrame()
    {
        var start = _frameStart;
        _frameStart = -1;
        if (start < 0 || _frameSpansBlocks)
        {
            return false;
        }

        if (_written > start)
        {
            // All in the tail, none published: the send loop reads the tail only up to what was published.
            Volatile.Write(ref _tail!.End, _tail.End - (int)(_written - start));
            _written = start;
        }

        return true;
    }

    /// <summary>
    /// Promises that from now on every write (<see cref="GetMemory"/> to <see cref="Advance"/>, and
    /// any use of the memory obtained) happens under <see cref="SyncRoot"/>, which lets the send loop
    /// return the buffer's blocks to the pool while it is parked with everything sent (at once, if
    /// it is parked so now).
    /// </summary>
    public void ReleaseBlocksWhenIdle()
    {
        lock (_sync)
        {
            _releaseWhenIdle = true;
            if (_parked)
            {
                ReleaseIdleBlocks();
            }
        }
    }

    /// <summary>
    /// Never publishes what is written but not flushed yet, nor anything written later: a writer
    /// that gives up (its session ends) drops it, and <see cref="Complete"/> publishes nothing more.
    /// Call under <see cref="SyncRoot"/>.
    /// </summary>
    public void WithholdHeld() => _publishLimit = _published;

    /// <summary>
    /// Hands everything written so far to the send loop. Completes at once unless more than the
    /// pause threshold is waiting to be sent; then it completes when the send loop has brought that
    /// down to the resume threshold. After the send loop failed, it raises that failure.
    /// </summary>
    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _failure) is { } failure)
        {
            return ValueTask.FromException<FlushResult>(failure);
        }

        lock (_sync)
        {
            PublishHeld();
        }

        return AfterPublish(cancellationToken);
    }

    /// <summary>As <see cref="FlushAsync"/>, for a writer that holds <see cref="SyncRoot"/>.</summary>
    /// <returns>As <see cref="FlushAsync"/>.</returns>
    public ValueTask<FlushResult> FlushHeld()
    {
        if (Volatile.Read(ref _failure) is { } failure)
        {
            return ValueTask.FromException<FlushResult>(failure);
        }

        PublishHeld();
        return AfterPublish(default);
    }

    private ValueTask<FlushResult> AfterPublish(CancellationToken cancellationToken)
    {
        if (_completed)
        {
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
        }

        if (_cancelNextFlush && TakeCancellation())
        {
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: true, isCompleted: false));
        }

        // The send loop's count is read only when the last one read says the buffer may be full:
        // it only grows, so the distance to an older reading is never an underestimate.
        if (_written - _sentSeen < _pauseThreshold || _written - (_sentSeen = Volatile.Read(ref _sent)) < _pauseThreshold)
        {
            return new ValueTask<FlushResult>(default(FlushResult));
        }

        return WaitForRoomAsync(cancellationToken);
    }

    /// <inheritdoc/>
    /// <summary>
    /// Cancels the flush that waits for room, or, when none waits, the next flush (as a pipe's
    /// writer does): it returns <see cref="FlushResult.IsCanceled"/> (what it published stays published).
    /// </summary>
    public override void CancelPendingFlush()
    {
        lock (_waitersLock)
        {
            if (_flushWaiting)
            {
                _flushWaiting = false;
                _flushWaiter.Complete(new FlushResult(isCanceled: true, isCompleted: false));
            }
            else
            {
                _cancelNextFlush = true;
            }
        }
    }

    /// <summary>
    /// No more bytes will be written: publishes what was written, and the send loop ends once it
    /// has sent everything. The exception, if any, is ignored: what was flushed is still sent.
    /// </summary>
    public override void Complete(Exception? exception = null)
    {
        lock (_sync)
        {
            _completed = true;
            PublishHeld();
        }

        lock (_waitersLock)
        {
            if (_flushWaiting)
            {
                _flushWaiting = false;
                _flushWaiter.Complete(new FlushResult(isCanceled: false, isCompleted: true));
            }
        }
    }

    /// <summary>
    /// Waits until the send loop has sent everything flushed before this call.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting; nothing is discarded.</param>
    /// <returns>A task that completes when everything flushed so far was sent.</returns>
    /// <exception cref="IOException">The send loop failed before sending all of it.</exception>
    public ValueTask WaitUntilSentAsync(CancellationToken cancellationToken)
    {
        var target = Volatile.Read(ref _published);
        TaskCompletionSource sent;
        lock (_waitersLock)
        {
            if (Volatile.Read(ref _sent) >= target)
            {
                return ValueTask.CompletedTask;
            }

            if (Volatile.Read(ref _failure) is { } failure)
            {
                return ValueTask.FromException(NotSent(target, failure));
            }

            sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            (_sentWaiters ??= []).Add((target, sent));
            Interlocked.Exchange(ref _hasWaiters, 1);
        }

        // The loop may have sent it between the check and the registration.
        AfterSent();
        if (!sent.Task.IsCompleted && cancellationToken.CanBeCanceled)
        {
            // A cancellation ends the waiter itself, at once: a later failure of the loop then finds
            // it completed and leaves no exception unobserved.
            var registration = cancellationToken.UnsafeRegister(static (state, token) => ((TaskCompletionSource)state!).TrySetCanceled(token), sent);
            sent.Task.ContinueWith(static (_, state) => ((IDisposable)state!).Dispose(), registration, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        return new ValueTask(sent.Task);
    }

    private bool TakeCancellation()
    {
        lock (_waitersLock)
        {
            var cancel = _cancelNextFlush;
            _cancelNextFlush = false;
            return cancel;
        }
    }

    /// <summary>Makes what was written visible to the send loop and wakes it if it is parked. Call under <see cref="SyncRoot"/>.</summary>
    private void PublishHeld()
    {
        var publish = Math.Min(_written, _publishLimit);
        if (publish > _published)
        {
            Volatile.Write(ref _published, publish);
        }

        if (_parked)
        {
            // The loop's continuation runs on the thread pool, never inline here.
            _parked = false;
            _wake.Set();
        }
    }

    private ValueTask<FlushResult> WaitForRoomAsync(CancellationToken cancellationToken)
    {
        lock (_waitersLock)
        {
            if (_flushWaiting)
            {
                throw new InvalidOperationException("Only one flush may wait at a time.");
            }

            _flushWaiting = true;
            _flushWaiter.Reset();
            Interlocked.Exchange(ref _hasWaiters, 1);
        }

        // The loop may have made room between the check and the registration, or failed.
        AfterSent();
        var wait = _flushWaiter.AsValueTask();
        return cancellationToken.CanBeCanceled && !wait.IsCompleted ? WaitCancellableAsync(wait, cancellationToken) : wait;
    }

    private async ValueTask<FlushResult> WaitCancellableAsync(ValueTask<FlushResult> wait, CancellationToken cancellationToken)
    {
        using (cancellationToken.UnsafeRegister(static state => ((SendBuffer)state!).CancelPendingFlush(), this))
        {
            var result = await wait.ConfigureAwait(false);
            if (result.IsCanceled)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            return result;
        }
    }

    private void AddSegment(int sizeHint)
    {
        var size = Math.Max(sizeHint, _segmentSize);
        var segment = _pool is not null && size <= _pool.MaxBufferSize
            ? new Segment(_pool.Rent(size))
            : new Segment(ArrayPool<byte>.Shared.Rent(size));
        segment.RunningIndex = _written;

        // Own every line of the block before framing into it, in one sweep of full-line writes
        // (the send loop's core read it last), when it follows a block filled with small frames
        // (under 1 KiB on average): their stores then go to lines this core holds. Large frames
        // are copied in full lines anyway, and the first block after an idle spell takes a
        // message or a few: neither is worth a sweep of the whole block.
        if (_tail is not null && _framesInTail * 1024L > _tail.End)
        {
            segment.Memory.Span.Clear();
        }

        _framesInTail = 0;
        _frameSpansBlocks |= _frameStart >= 0 && _written > _frameStart;

        if (_tail is null)
        {
            Volatile.Write(ref _first, segment);
        }
        else
        {
            Volatile.Write(ref _tail.Next, segment);
        }

        _tail = segment;
    }

    // ---- The send loop's side -----------------------------------------------------------------

    /// <summary>
    /// For the send loop: completes with true when there are flushed bytes to send, with false
    /// when the writer completed and everything was sent (the loop ends). Parks until then.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> WaitForDataAsync()
    {
        while (true)
        {
            if (Volatile.Read(ref _published) > _sent)
            {
                return true;
            }

            lock (_sync)
            {
                // Decided under the lock writers publish under: a publication either came first
                // (seen here) or comes after the flag is set (and wakes the loop).
                if (_published > _sent)
                {
                    continue;
                }

                if (_completed)
                {
                    return false;
                }

                _parked = true;
                if (_releaseWhenIdle)
                {
                    ReleaseIdleBlocks();
                }
            }

            await _wake.WaitAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Returns every block to the pool when everything written was sent and no frame is open, so
    /// that the next write starts a new one. Call under <see cref="SyncRoot"/> with the send loop
    /// parked, and only once writers write under that lock.
    /// </summary>
    private void ReleaseIdleBlocks()
    {
        if (_written != _sent || _frameStart >= 0)
        {
            return;
        }

        for (var segment = _head ?? _first; segment is not null; segment = segment.Next)
        {
            segment.Release();
        }

        _head = null;
        _headOffset = 0;
        _tail = null;
        Volatile.Write(ref _first, null);
    }

    /// <summary>
    /// For the send loop: lists every flushed byte not yet sent, as array segments in order
    /// (at most <paramref name="maximumChunks"/> of them), and returns how many bytes they hold.
    /// </summary>
    public long CollectUnsent(List<ArraySegment<byte>> chunks, int maximumChunks = 64)
    {
        chunks.Clear();
        var published = Volatile.Read(ref _published);
        var segment = _head ??= Volatile.Read(ref _first);
        var offset = _headOffset;
        long total = 0;
        var position = _sent;
        while (segment is not null && position < published && chunks.Count < maximumChunks)
        {
            var next = Volatile.Read(ref segment.Next);
            var end = published - segment.RunningIndex;
            if (next is not null)
            {
                // Written to its end; the end may not be flushed yet.
                end = Math.Min(end, Volatile.Read(ref segment.End));
            }

            var count = (int)(end - offset);
            if (count > 0)
            {
                chunks.Add(new ArraySegment<byte>(segment.Array, segment.ArrayOffset + offset, count));
                total += count;
                position += count;
            }

            segment = next;
            offset = 0;
        }

        return total;
    }

    /// <summary>For the send loop: <paramref name="bytes"/> more were sent; frees what is done and wakes who waits.</summary>
    public void AdvanceSent(long bytes)
    {
        var remaining = bytes;
        while (_head is { } head)
        {
            var next = Volatile.Read(ref head.Next);
            if (next is null)
            {
                // The segment the writer is in: the loop stays in it too.
                _headOffset += (int)remaining;
                break;
            }

            var inHead = Volatile.Read(ref head.End) - _headOffset;
            if (remaining < inHead)
            {
                _headOffset += (int)remaining;
                break;
            }

            // Sent to its end, and the writer has moved on: nobody writes or reads it any more.
            remaining -= inHead;
            _head = next;
            _headOffset = 0;
            head.Release();
        }

        // A full fence: a waiter registers, then reads this.
        Interlocked.Add(ref _sent, bytes);
        if (Volatile.Read(ref _hasWaiters) != 0)
        {
            AfterSent();
        }
    }

    /// <summary>For the send loop: it failed, so nothing more will be sent; every waiter and later flush gets <paramref name="error"/>.</summary>
    public void Fail(Exception error)
    {
        Interlocked.CompareExchange(ref _failure, error, null);
        AfterSent();
    }

    /// <summary>Completes the waiters whose condition holds: the flush once there is room, the sent-waiters once sent.</summary>
    private void AfterSent()
    {
        lock (_waitersLock)
        {
            var sent = Volatile.Read(ref _sent);
            var failure = Volatile.Read(ref _failure);
            if (_flushWaiting && (failure is not null || Volatile.Read(ref _published) - sent <= _resumeThreshold))
            {
                _flushWaiting = false;
                if (failure is null)
                {
                    _flushWaiter.Complete(default);
                }
                else
                {
                    _flushWaiter.Fail(failure);
                }
            }

            if (_sentWaiters is { Count: > 0 } waiters)
            {
                for (var i = waiters.Count - 1; i >= 0; i--)
                {
                    var (target, done) = waiters[i];
                    if (done.Task.IsCompleted)
                    {
                        waiters.RemoveAt(i); // cancelled
                    }
                    else if (sent >= target)
                    {
                        done.TrySetResult();
                        waiters.RemoveAt(i);
                    }
                    else if (failure is not null)
                    {
                        done.TrySetException(NotSent(target, failure));
                        waiters.RemoveAt(i);
                    }
                }
            }

            if (!_flushWaiting && _sentWaiters is not { Count: > 0 })
            {
                Interlocked.Exchange(ref _hasWaiters, 0);
            }
        }
    }

    private IOException NotSent(long target, Exception failure)
        => new($"The connection failed with {target - Volatile.Read(ref _sent)} of {target} flushed bytes not sent: {failure.Message}", failure);

    /// <summary>One block of the buffer: written by the writer from its start, sent by the loop behind it.</summary>
    private sealed class Segment
    {
        private readonly IMemoryOwner<byte>? _owner;
        private readonly bool _ownAllocation;

        public Segment(IMemoryOwner<byte> owner)
        {
            _owner = owner;
            Memory = owner.Memory;
            if (!MemoryMarshal.TryGetArray<byte>(Memory, out var array))
            {
                // The send loop needs arrays: a block of its own, left to the collector when done.
                array = new ArraySegment<byte>(new byte[Memory.Length]);
                _owner.Dispose();
                _owner = null;
                _ownAllocation = true;
                Memory = array;
            }

            Array = array.Array!;
            ArrayOffset = array.Offset;
        }

        public Segment(byte[] array)
        {
            Memory = array;
            Array = array;
        }

        public Memory<byte> Memory { get; }

        public byte[] Array { get; }

        public int ArrayOffset { get; }

        public long RunningIndex { get; set; }

        // Written by the writer, read by the send loop.
        public int End;
        public Segment? Next;

        public void Release()
        {
            if (_owner is not null)
            {
                _owner.Dispose();
            }
            else if (!_ownAllocation)
            {
                ArrayPool<byte>.Shared.Return(Array);
            }
        }
    }

    /// <summary>The one flush that may wait for room, reused.</summary>
    private sealed class FlushWaiter : IValueTaskSource<FlushResult>
    {
        private ManualResetValueTaskSourceCore<FlushResult> _core = new() { RunContinuationsAsynchronously = true };

        public void Reset() => _core.Reset();

        public ValueTask<FlushResult> AsValueTask() => new(this, _core.Version);

        public void Complete(FlushResult result) => _core.SetResult(result);

        public void Fail(Exception error) => _core.SetException(error);

        public FlushResult GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
            => _core.OnCompleted(continuation, state, token, flags);
    }
}
