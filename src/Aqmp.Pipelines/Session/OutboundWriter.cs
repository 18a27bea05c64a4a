using System.Buffers;
using System.IO.Pipelines;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

/// <summary>
/// The outbound side of a running session. Senders frame their messages straight into the
/// transport's <see cref="PipeWriter"/>, in their own context and in the order they take this
/// writer's lock: no queue, no copy, no hand-off per message. Framed bytes reach the pipe once
/// per buffer (not once per message) and are flushed once per batch.
/// </summary>
/// <remarks>
/// <para>
/// <b>Flushing.</b> The first message of a batch wakes the write loop, which flushes whatever has
/// been framed by the time it runs. A sender that finds a full batch
/// (<see cref="PipeProtocolOptions.OutboundBatchBytes"/>) flushes it before framing its own
/// message, so a fast sender never outruns the write loop by more than a batch. Replies the
/// read loop sends while it handles a read (from <c>OnMessageAsync</c>, synchronously) wake
/// nobody: the read loop flushes them itself (<see cref="FlushDeferred"/>) before it waits for
/// the next read or for a handler that did not complete, so a request/response exchange costs no
/// hop to the write loop.
/// </para>
/// <para>
/// <b>Backpressure.</b> A flush that must wait for the transport (the send pipe is over its pause
/// threshold: the peer is not reading) is handed to the write loop, and until it completes nobody
/// writes into the pipe: senders queue up, in call order, <em>before</em> their messages are
/// framed, so a sender that gives up (cancelled, or the session ended) has sent nothing. When the
/// flush completes, the write loop frames the queued messages in order, each in its sender's
/// execution context. Outbound memory stays
/// below the pause threshold plus one batch and one message (plus the waiting senders' own messages).
/// </para>
/// <para>
/// <b>Framer errors.</b> A framer (or outbound filter) that throws before any of its bytes reached
/// the pipe refuses only that message; the session goes on. One that throws after part of its
/// frame reached the pipe has corrupted the stream: the writer closes and the session fails with
/// that error.
/// </para>
/// <para>Lock order: the session's gate may be held while this writer's lock is taken, never the reverse.</para>
/// </remarks>
/// <typeparam name="TMessage">The protocol's message type.</typeparam>
internal sealed class OutboundWriter<TMessage> : IBufferWriter<byte>
{
    /// <summary>The smallest buffer asked of the pipe, so that small frames share one commit.</summary>
    private const int BufferHint = 4096;

    private readonly Lock _lock = new();
    private readonly PipeWriter _output;
    private readonly IMessageFramer<TMessage> _framer;
    private readonly Func<TMessage, TMessage> _onOutbound;
    private readonly Action<Exception> _fail;
    private readonly long _batchBytes;
    private readonly AsyncAutoResetSignal _flushRequest = new();
    private readonly Queue<QueuedSend> _waiting = new(); // senders waiting for the transport, in call order

    // Guarded by _lock.
    private Memory<byte> _buffer;        // space the pipe lent for framing, not yet committed
    private int _buffered;               // bytes framed into _buffer
    private int _frameStart = -1;        // where the frame being written starts in _buffer; -1 between frames
    private bool _frameCommitted;        // part of the frame being written has reached the pipe
    private long _unflushedBytes;        // framed since the last flush (committed or not)
    private int _unflushedMessages;
    private bool _flushRequested;        // the write loop has been woken for the current batch
    private bool _flushDeferred;         // the read loop framed a reply and will flush it itself (FlushDeferred)
    private ValueTask<FlushResult>? _pendingFlush; // a flush waiting for the transport, for the write loop to await
    private bool _flushing;              // a flush waits for the transport: senders queue up
    private bool _closed;                // no more messages: the session is ending
    private bool _finished;              // the write loop is gone: the pipe is no longer ours

    /// <summary>Creates the writer of one session.</summary>
    /// <param name="output">The transport's outbound pipe.</param>
    /// <param name="framer">Frames each message.</param>
    /// <param name="onOutbound">The session's outbound filter, applied to each message as it is framed.</param>
    /// <param name="fail">Ends the session with an error (called outside this writer's lock).</param>
    /// <param name="batchBytes">Unflushed bytes at which a sender flushes before framing its message.</param>
    public OutboundWriter(PipeWriter output, IMessageFramer<TMessage> framer, Func<TMessage, TMessage> onOutbound, Action<Exception> fail, long batchBytes)
    {
        _output = output;
        _framer = framer;
        _onOutbound = onOutbound;
        _fail = fail;
        _batchBytes = batchBytes;
    }

    /// <summary>What <see cref="TryWrite(TMessage, bool)"/> did with a message.</summary>
    public enum WriteResult
    {
        /// <summary>Framed: it will be flushed with its batch.</summary>
        Written,

        /// <summary>Not framed: a flush waits for the transport, or senders are queued. Queue with <see cref="TryQueue"/>.</summary>
        Busy,

        /// <summary>Not framed: the writer is closed (the session is ending).</summary>
        Closed,
    }

    // ---- Upper half: the senders ----------------------------------------------------------

    /// <summary>Frames <paramref name="message"/> unless the writer is closed or waiting for the transport.</summary>
    /// <param name="message">The message.</param>
    /// <param name="readLoopFlushes">
    /// The caller is the read loop, running synchronously, and calls <see cref="FlushDeferred"/>
    /// before it next waits: the write loop is not woken for this message (a reply to a read
    /// leaves with the other replies to that read, without a thread hop).
    /// </param>
    /// <returns>Whether it was framed.</returns>
    /// <exception cref="Exception">The outbound filter or the framer refused the message (it was not sent).</exception>
    public WriteResult TryWrite(TMessage message, bool readLoopFlushes = false)
        => TryWrite(new ReadOnlySpan<TMessage>(in message), readLoopFlushes, out _);

    /// <summary>
    /// Frames <paramref name="messages"/> in order under one lock, with at most one wake of the
    /// write loop, until all are framed or the writer is closed or must wait for the transport.
    /// </summary>
    /// <param name="messages">The messages.</param>
    /// <param name="readLoopFlushes">As for one message: the read loop flushes them itself.</param>
    /// <param name="written">How many were framed, from the first.</param>
    /// <returns><see cref="WriteResult.Written"/> when all were framed; otherwise why the rest were not.</returns>
    /// <exception cref="Exception">
    /// The outbound filter or the framer refused message <paramref name="written"/> (it and those
    /// after it were not sent; those before it were).
    /// </exception>
    public WriteResult TryWrite(ReadOnlySpan<TMessage> messages, bool readLoopFlushes, out int written)
    {
        written = 0;
        Exception? failure = null;
        System.Runtime.ExceptionServices.ExceptionDispatchInfo? refusal = null;
        var wake = false;
        var result = WriteResult.Written;
        lock (_lock)
        {
            if (_closed)
            {
                return WriteResult.Closed;
            }

            if (_flushing || _waiting.Count > 0)
            {
                return WriteResult.Busy;
            }

            while (written < messages.Length)
            {
                if (_unflushedBytes >= _batchBytes)
                {
                    failure = StartFlush();
                    if (failure is not null || _flushing)
                    {
                        // Failed, or waiting for the transport: the write loop takes over the flush.
                        _flushRequested = wake = true;
                        result = failure is null ? WriteResult.Busy : WriteResult.Closed;
                        break;
                    }
                }

                try
                {
                    failure = Frame(messages[written]);
                }
                catch (Exception ex)
                {
                    // Refused before any of its bytes reached the pipe: those framed before it stand.
                    refusal = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex);
                    break;
                }

                if (failure is not null)
                {
                    break;
                }

                written++;
                if (!_flushRequested)
                {
                    if (readLoopFlushes)
                    {
                        _flushDeferred = true;
                    }
                    else
                    {
                        _flushRequested = wake = true;
                    }
                }
            }
        }

        if (wake)
        {
            _flushRequest.Set();
        }

        if (failure is not null)
        {
            // The transport is gone, or part of a frame is in the pipe: the session ends with this error.
            _fail(failure);
            if (result == WriteResult.Written)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
        }

        refusal?.Throw();
        return result;
    }

    /// <summary>
    /// Queues a sender behind a flush that waits for the transport: the write loop frames its
    /// message, in call order, once the transport has room.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Withdraws the message, unless it was framed already.</param>
    /// <returns>
    /// Null if the writer is no longer busy (write again); else a task that completes with true once
    /// the message is framed, with false if the writer closed first (the message was not sent), or
    /// with the framer's error, or cancelled.
    /// </returns>
    public Task<bool>? TryQueue(TMessage message, CancellationToken cancellationToken)
    {
        QueuedSend queued;
        lock (_lock)
        {
            if (_closed)
            {
                return QueuedSend.NotSent;
            }

            if (!_flushing && _waiting.Count == 0)
            {
                return null;
            }

            queued = new QueuedSend(this, message);
            _waiting.Enqueue(queued);
        }

        return queued.WaitAsync(cancellationToken);
    }

    /// <summary>Frames one message under the lock; returns an error that corrupted the stream, or throws one that did not.</summary>
    private Exception? Frame(TMessage message)
    {
        var unflushed = _unflushedBytes;
        _frameStart = _buffered;
        _frameCommitted = false;
        try
        {
            _framer.WriteMessage(_onOutbound(message), this);
            _unflushedMessages++;
            return null;
        }
        catch (Exception ex) when (_frameCommitted)
        {
            _closed = true;
            return ex;
        }
        catch
        {
            // None of its bytes reached the pipe (earlier messages' may have): forget them; only
            // this message is refused.
            _buffered = _frameStart;
            _unflushedBytes = unflushed;
            throw;
        }
        finally
        {
            _frameStart = -1;
        }
    }

    // ---- Bottom half: the read loop's replies ----------------------------------------------

    /// <summary>
    /// Flushes the replies the read loop framed with <c>readLoopFlushes</c>, from the read loop
    /// itself: at once when the transport has room (no thread hop), otherwise by handing the
    /// waiting flush to the write loop. Call from the read loop before it waits for anything.
    /// </summary>
    public void FlushDeferred()
    {
        if (!Volatile.Read(ref _flushDeferred))
        {
            return;
        }

        Exception? failure = null;
        var wake = false;
        lock (_lock)
        {
            _flushDeferred = false;
            if (_closed || _flushRequested || _flushing || _unflushedBytes == 0)
            {
                // Ending (the write loop drains), or the write loop was woken for this batch anyway.
                return;
            }

            failure = StartFlush();
            if (failure is not null || _flushing)
            {
                // Failed, or waiting for the transport: the write loop takes over, as for a sender.
                _flushRequested = wake = true;
            }
        }

        if (wake)
        {
            _flushRequest.Set();
        }

        if (failure is not null)
        {
            _fail(failure);
        }
    }

    // ---- Bottom half: the write loop --------------------------------------------------------

    /// <summary>Waits until a batch has started, a flush needs awaiting, or the writer closed. For the write loop only.</summary>
    /// <returns>The wait.</returns>
    public ValueTask WaitForFlushRequestAsync() => _flushRequest.WaitAsync();

    /// <summary>Whether the writer is closed and everything framed has been flushed: the write loop may end.</summary>
    public bool IsDrained
    {
        get
        {
            lock (_lock)
            {
                return _closed && _unflushedBytes == 0 && !_flushing;
            }
        }
    }

    /// <summary>
    /// Awaits the flush waiting for the transport, if any, then flushes what has been framed since,
    /// until nothing is left. For the write loop only: the one awaiter of every flush.
    /// </summary>
    /// <returns>Completes when the transport has taken everything framed so far.</returns>
    /// <exception cref="IOException">The transport no longer accepts data: the connection is closed.</exception>
    public async ValueTask FlushAsync()
    {
        while (true)
        {
            ValueTask<FlushResult> pending;
            lock (_lock)
            {
                _flushRequested = false;
                if (_pendingFlush is null)
                {
                    if (_finished || _unflushedBytes == 0)
                    {
                        return;
                    }

                    if (StartFlush() is { } startFailure)
                    {
                        _closed = true;
                        throw startFailure;
                    }

                    if (_pendingFlush is null)
                    {
                        return;
                    }
                }

                pending = _pendingFlush.Value;
                _pendingFlush = null;
            }

            try
            {
                ThrowIfTransportClosed(await pending.ConfigureAwait(false));
            }
            finally
            {
                lock (_lock)
                {
                    _flushing = false;
                }
            }

            if (FrameWaiting() is { } failure)
            {
                throw failure;
            }
        }
    }

    /// <summary>
    /// Frames the queued senders' messages in order, flushing full batches on the way, until the
    /// queue is empty or a flush waits for the transport again.
    /// </summary>
    /// <returns>An error that ended the writer (the transport failed, or a framer broke off mid-frame), or null.</returns>
    private Exception? FrameWaiting()
    {
        lock (_lock)
        {
            while (!_closed && !_flushing && _waiting.TryPeek(out var next))
            {
                if (next.Task.IsCompleted)
                {
                    _waiting.Dequeue(); // withdrawn
                    continue;
                }

                if (_unflushedBytes >= _batchBytes)
                {
                    if (StartFlush() is { } failed)
                    {
                        ReleaseWaiting();
                        return failed;
                    }

                    continue;
                }

                _waiting.Dequeue();
                try
                {
                    if (next.FrameInSendersContext() is { } corruption)
                    {
                        next.TrySetException(corruption);
                        ReleaseWaiting();
                        return corruption;
                    }

                    next.TrySetResult(true);
                }
                catch (Exception ex)
                {
                    next.TrySetException(ex);
                }
            }

            return null;
        }
    }

    /// <summary>Tells every queued sender that its message was not sent: the writer closed. Call under the lock.</summary>
    private void ReleaseWaiting()
    {
        while (_waiting.TryDequeue(out var queued))
        {
            queued.TrySetResult(false);
        }
    }

    /// <summary>
    /// Commits and flushes what has been framed. Returns an error if the transport refused it;
    /// leaves <see cref="_pendingFlush"/> and <see cref="_flushing"/> set if it waits for the
    /// transport. Call under the lock, with no flush pending.
    /// </summary>
    private Exception? StartFlush()
    {
        try
        {
            Commit();
            _unflushedBytes = 0;
            _unflushedMessages = 0;
            var flush = _output.FlushAsync();
            if (!flush.IsCompletedSuccessfully)
            {
                _pendingFlush = flush;
                _flushing = true;
                return null;
            }

            ThrowIfTransportClosed(flush.Result);
            return null;
        }
        catch (Exception ex)
        {
            _closed = true;
            return ex;
        }
    }

    /// <summary>Stops accepting messages; the write loop flushes what was framed and ends.</summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            ReleaseWaiting();
        }

        _flushRequest.Set();
    }

    /// <summary>Marks the write loop as gone: from now on the pipe is not touched. Returns the messages never flushed.</summary>
    /// <returns>How many framed messages were not flushed.</returns>
    public int Finish()
    {
        lock (_lock)
        {
            _closed = _finished = true;
            ReleaseWaiting();
            var discarded = _unflushedMessages;
            _unflushedMessages = 0;
            _unflushedBytes = 0;
            _buffer = default;
            _buffered = 0;
            _pendingFlush = null;
            _flushing = false;
            return discarded;
        }
    }

    // ---- IBufferWriter<byte>, for the framer (always called under _lock) ------------------------

    /// <inheritdoc/>
    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _buffer.Length - _buffered);
        _buffered += count;
        _unflushedBytes += count;
    }

    /// <inheritdoc/>
    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        if (_buffer.Length - _buffered < Math.Max(sizeHint, 1))
        {
            Commit();
            _buffer = _output.GetMemory(Math.Max(sizeHint, BufferHint));
        }

        return _buffer[_buffered..];
    }

    /// <inheritdoc/>
    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    /// <summary>Hands the framed bytes of the current buffer to the pipe.</summary>
    private void Commit()
    {
        if (_buffered > 0)
        {
            _output.Advance(_buffered);
        }

        if (_frameStart >= 0)
        {
            // Committed while a frame is being written: did any of the frame's own bytes go?
            _frameCommitted |= _buffered > _frameStart;
            _frameStart = 0;
        }

        _buffer = default;
        _buffered = 0;
    }

    private static void ThrowIfTransportClosed(FlushResult result)
    {
        if (result.IsCompleted && !result.IsCanceled)
        {
            throw new IOException("The transport stopped accepting outbound data: the connection is closed.");
        }
    }

    /// <summary>A sender queued behind a flush that waits for the transport.</summary>
    private sealed class QueuedSend(OutboundWriter<TMessage> writer, TMessage message)
        : TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        /// <summary>The outcome of a sender that came after the writer closed.</summary>
        public static readonly Task<bool> NotSent = System.Threading.Tasks.Task.FromResult(false);

        // The sender's execution context: OnOutbound sees its AsyncLocal values (logging scopes, activities).
        private readonly ExecutionContext? _context = ExecutionContext.Capture();
        private Exception? _corruption;

        public TMessage Message { get; } = message;

        /// <summary>Frames the message as the sender would have; returns an error that corrupted the stream. Call under the writer's lock.</summary>
        public Exception? FrameInSendersContext()
        {
            if (_context is null)
            {
                return writer.Frame(Message);
            }

            ExecutionContext.Run(_context, static state => ((QueuedSend)state!).FrameCaptured(), this);
            return _corruption;
        }

        private void FrameCaptured() => _corruption = writer.Frame(Message);

        public async Task<bool> WaitAsync(CancellationToken cancellationToken)
        {
            using (cancellationToken.UnsafeRegister(static (state, token) => ((QueuedSend)state!).Withdraw(token), this))
            {
                return await Task.ConfigureAwait(false);
            }
        }

        private void Withdraw(CancellationToken token)
        {
            // Under the writer's lock: a message is either framed or withdrawn, never both.
            lock (writer._lock)
            {
                TrySetCanceled(token);
            }
        }
    }
}
