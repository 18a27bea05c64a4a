using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.ExceptionServices;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

/// <summary>
/// The outbound side of a running session. Senders frame their messages straight into the
/// transport's send buffer (<c>SendBuffer</c>), in their own context and in the order they take this
/// writer's lock, and flush them there: no queue, no copy, no hand-off per message. A transport's
/// flush only hands the bytes to its send loop (see <c>SendBuffer</c>), so a flush per send is cheap.
/// </summary>
/// <remarks>
/// <para>
/// <b>Replies held back.</b> Replies the read loop sends while it handles a read (from
/// <c>OnMessageAsync</c>, synchronously) are not flushed one by one: the read loop flushes them
/// itself (<see cref="FlushDeferred"/>) before it waits for the next read or for a handler that did
/// not complete, so the replies to one read leave together. So does a burst sent with
/// <c>SendManyAsync</c>. A batch that reaches <see cref="PipeProtocolOptions.OutboundBatchBytes"/>
/// is flushed on the way.
/// </para>
/// <para>
/// <b>Backpressure.</b> A flush that must wait for the transport (more than its pause threshold
/// is unsent: the peer is not reading) is awaited off the senders' path, and until it completes
/// nobody writes into the pipe: senders queue up (<see cref="TryQueue"/>), in call order,
/// <em>before</em> their messages are framed, so a sender that gives up (cancelled, or the session
/// ended) has sent nothing. When the flush completes, the first sender in the queue is given the
/// turn: it frames its message in its own flow (<see cref="TryWrite(ReadOnlySpan{TMessage}, bool, out int, bool, OutboundDescriptors?)"/>
/// with <c>hasTurn</c>), and hands the turn to the next as it leaves. Outbound memory stays below
/// the pause threshold plus one batch and one message (plus the waiting senders' own messages).
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
internal sealed class OutboundWriter<TMessage>
{
    private static readonly Task<bool> NotSent = Task.FromResult(false);

    private readonly Lock _lock;
    private readonly SendBuffer _output;
    private readonly IMessageFramer<TMessage> _framer;
    private readonly IOutboundOwner<TMessage> _owner;
    private readonly long _batchBytes;

    // Guarded by _lock.
    private readonly Queue<TaskCompletionSource<bool>> _waiting = new(); // senders waiting for their turn, in call order
    private bool _turnGiven;             // the first of the queue was given its turn and has not framed yet
    private int _unflushedMessages;      // framed since the last flush
    private Task? _flushWait;            // awaits a flush that waits for the transport: senders queue up meanwhile
    private bool _closed;                // no more messages: the session is ending
    private bool _finished;              // the session let go of the pipe: it is no longer touched
    private volatile bool _deferred;     // the read loop framed replies it will flush itself

    /// <summary>Creates the writer of one session.</summary>
    /// <param name="output">The transport's send buffer; messages are framed straight into it.</param>
    /// <param name="framer">Frames each message.</param>
    /// <param name="owner">The session: its outbound filter, applied to each message as it is framed, and its end with an error (called outside this writer's lock).</param>
    /// <param name="batchBytes">Unflushed bytes at which a batch (held-back replies, a burst) is flushed on the way.</param>
    public OutboundWriter(SendBuffer output, IMessageFramer<TMessage> framer, IOutboundOwner<TMessage> owner, long batchBytes)
    {
        _output = output;

        // Framing and publishing under the send buffer's own lock: a flush is then two plain writes.
        // As every write happens under it, an idle session holds no send block.
        _lock = output.SyncRoot;
        (_framer, _owner, _batchBytes) = (framer, owner, batchBytes);
        output.ReleaseBlocksWhenIdle();
    }

    /// <summary>Told of each flush's messages and of each wait for the transport; null for none.</summary>
    public MessageActivity? Activity { get; init; }

    /// <summary>The connection descriptors sent with a message are attached to, when it passes descriptors.</summary>
    public UnixDescriptorConnection? Descriptors { get; init; }

    /// <summary>What <see cref="TryWrite(ReadOnlySpan{TMessage}, bool, out int, bool, OutboundDescriptors?)"/> did with the messages.</summary>
    public enum WriteResult
    {
        /// <summary>Framed and flushed (or held back for the read loop to flush).</summary>
        Written,

        /// <summary>Not framed: a flush waits for the transport, or senders are queued. Queue with <see cref="TryQueue"/>.</summary>
        Busy,

        /// <summary>Not framed: the writer is closed (the session is ending).</summary>
        Closed,
    }

    /// <summary>Frames and flushes <paramref name="message"/> unless the writer is closed or waiting for the transport.</summary>
    /// <param name="message">The message.</param>
    /// <param name="readLoopFlushes">As for several messages.</param>
    /// <returns>Whether it was framed.</returns>
    /// <exception cref="Exception">The outbound filter or the framer refused the message (it was not sent).</exception>
    public WriteResult TryWrite(TMessage message, bool readLoopFlushes = false)
        => TryWrite(new ReadOnlySpan<TMessage>(in message), readLoopFlushes, out _);

    /// <summary>
    /// Frames <paramref name="messages"/> in order under one lock and flushes them once, until all
    /// are framed or the writer is closed or must wait for the transport.
    /// </summary>
    /// <param name="messages">The messages.</param>
    /// <param name="readLoopFlushes">
    /// The caller is the read loop, running synchronously, and calls <see cref="FlushDeferred"/>
    /// before it next waits: the messages are framed but not flushed yet (a reply to a read leaves
    /// with the other replies to that read).
    /// </param>
    /// <param name="written">How many were framed, from the first.</param>
    /// <param name="hasTurn">The caller was given its turn by <see cref="TryQueue"/>: it frames ahead of the queue, and passes the turn on.</param>
    /// <param name="descriptors">Descriptors to send with the first byte of the first message, unless attached already; attached once it is framed.</param>
    /// <returns><see cref="WriteResult.Written"/> when all were framed; otherwise why the rest were not.</returns>
    /// <exception cref="Exception">
    /// The outbound filter or the framer refused message <paramref name="written"/> (it and those
    /// after it were not sent; those before it were).
    /// </exception>
    public WriteResult TryWrite(ReadOnlySpan<TMessage> messages, bool readLoopFlushes, out int written, bool hasTurn = false, OutboundDescriptors? descriptors = null)
    {
        written = 0;
        Exception? failure = null;
        ExceptionDispatchInfo? refusal = null;
        var result = WriteResult.Written;
        lock (_lock)
        {
            if (_closed)
            {
                return WriteResult.Closed;
            }

            if (hasTurn)
            {
                _turnGiven = false;
            }
            else if (_flushWait is not null || _turnGiven || _waiting.Count > 0)
            {
                return WriteResult.Busy;
            }

            for (; written < messages.Length; written++)
            {
                if (_output.UnflushedBytes >= _batchBytes && ((failure = Flush()) is not null || _flushWait is not null))
                {
                    // Failed, or waiting for the transport: the rest waits its turn.
                    result = failure is null ? WriteResult.Busy : WriteResult.Closed;
                    break;
                }

                var start = _output.Written;
                try
                {
                    failure = Frame(messages[written]);
                }
                catch (Exception ex)
                {
                    // Refused before any of its bytes reached the pipe: those framed before it stand.
                    refusal = ExceptionDispatchInfo.Capture(ex);
                    break;
                }

                if (failure is not null)
                {
                    break;
                }

                if (written == 0 && descriptors is { IsAttached: false } && Descriptors is { } connection)
                {
                    descriptors.Offset = start;
                    descriptors.IsAttached = true;
                    connection.Attach(descriptors);
                }
            }

            if (failure is null && _flushWait is null && _output.UnflushedBytes > 0)
            {
                if (readLoopFlushes)
                {
                    _deferred = true;
                }
                else
                {
                    failure = Flush();
                }
            }

            if (hasTurn)
            {
                PassTurn();
            }
        }

        if (failure is not null)
        {
            // The transport is gone, or part of a frame is in the pipe: the session ends with this error.
            _owner.OutboundFailed(this, failure);
            if (result == WriteResult.Written)
            {
                ExceptionDispatchInfo.Throw(failure);
            }
        }

        refusal?.Throw();
        return result;
    }

    /// <summary>
    /// Queues a sender behind a flush that waits for the transport (or behind the senders queued
    /// already) until it is its turn to frame, in call order.
    /// </summary>
    /// <param name="cancellationToken">Withdraws the sender, unless it was given its turn already.</param>
    /// <returns>
    /// Null if the writer is no longer busy (write again); else a task that completes with true when
    /// it is the sender's turn (write with <c>hasTurn</c> at once), with false if the writer closed
    /// first (the message was not sent), or cancelled.
    /// </returns>
    public Task<bool>? TryQueue(CancellationToken cancellationToken)
    {
        var turn = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_closed)
            {
                return NotSent;
            }

            if (_flushWait is null && !_turnGiven && _waiting.Count == 0)
            {
                return null;
            }

            _waiting.Enqueue(turn);
        }

        return WaitForTurnAsync(turn, cancellationToken);
    }

    private static async Task<bool> WaitForTurnAsync(TaskCompletionSource<bool> turn, CancellationToken cancellationToken)
    {
        // A turn is either given or withdrawn, never both: whoever completes the source first wins.
        using (cancellationToken.UnsafeRegister(static (state, token) => ((TaskCompletionSource<bool>)state!).TrySetCanceled(token), turn))
        {
            return await turn.Task.ConfigureAwait(false);
        }
    }

    /// <summary>Gives the turn to the first sender still waiting, unless a flush waits. Call under the lock.</summary>
    private void PassTurn()
    {
        while (!_turnGiven && _flushWait is null && _waiting.TryDequeue(out var next))
        {
            _turnGiven = next.TrySetResult(true); // false: withdrawn
        }
    }

    /// <summary>Frames one message under the lock; returns an error that corrupted the stream, or throws one that did not.</summary>
    private Exception? Frame(TMessage message)
    {
        _output.BeginFrame();
        try
        {
            _framer.WriteMessage(_owner.FilterOutbound(message), _output);
            _unflushedMessages++;
            return null;
        }
        catch (Exception ex)
        {
            if (_output.TryWithdrawFrame())
            {
                // None of its bytes stay (earlier messages' do): only this message is refused.
                throw;
            }

            // Part of its frame is in a block the buffer has moved past: the stream is corrupt.
            Closing();
            return ex;
        }
        finally
        {
            _output.EndFrame();
        }
    }

    /// <summary>
    /// Flushes the replies the read loop framed with <c>readLoopFlushes</c>. Call from the read
    /// loop before it waits for anything.
    /// </summary>
    public void FlushDeferred()
    {
        if (_deferred)
        {
            Close(closing: false);
        }
    }

    /// <summary>
    /// Stops accepting messages and flushes what was framed (the read loop's held-back replies
    /// included). A flush that waits for the transport goes on; <see cref="WhenFlushedAsync"/> waits for it.
    /// </summary>
    public void Close() => Close(closing: true);

    private void Close(bool closing)
    {
        Exception? failure = null;
        lock (_lock)
        {
            _deferred = false;
            if (!_closed && !_finished && _flushWait is null && (closing || !_turnGiven) && _output.UnflushedBytes > 0)
            {
                // Otherwise closing flushed them, or the flush under way (or the sender given the turn) flushes them.
                failure = Flush();
            }

            if (closing)
            {
                Closing();
            }
        }

        Fail(failure);
    }

    /// <summary>
    /// Flushes what has been framed. Returns an error if the transport refused it (the
    /// writer is then closed); when the flush waits for the transport, hands it to
    /// <see cref="AwaitFlushAsync"/>. Call under the lock, with no flush waiting.
    /// </summary>
    private Exception? Flush()
    {
        ValueTask<FlushResult> flush;
        try
        {
            if (_unflushedMessages > 0)
            {
                Activity?.MessagesSent(_unflushedMessages);
            }

            _unflushedMessages = 0;
            flush = _output.FlushHeld();
            if (flush.IsCompletedSuccessfully)
            {
                ThrowIfTransportClosed(flush.Result);
                return null;
            }
        }
        catch (Exception ex)
        {
            Closing();
            return ex;
        }

        _flushWait = AwaitOnThreadPool(flush);
        return null;
    }

    /// <summary>Starts <see cref="AwaitFlushAsync"/> on the thread pool, never inline under the lock (and its closure is made only here).</summary>
    private Task AwaitOnThreadPool(ValueTask<FlushResult> flush) => Task.Run(() => AwaitFlushAsync(flush));

    /// <summary>
    /// Awaits a flush that waits for the transport, then gives the first queued sender its turn,
    /// or flushes what was framed meanwhile. Never faults: a failure ends the session through the
    /// writer's <c>fail</c> callback.
    /// </summary>
    private async Task AwaitFlushAsync(ValueTask<FlushResult> flush)
    {
        Exception? failure = null;
        var cancelled = false;
        var waitStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            var result = await flush.ConfigureAwait(false);
            Activity?.BackpressureWaited(System.Diagnostics.Stopwatch.GetElapsedTime(waitStarted));
            cancelled = result.IsCanceled; // the teardown gave up on the drain: nothing more is flushed
            ThrowIfTransportClosed(result);
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        lock (_lock)
        {
            _flushWait = null;
            if (failure is not null || cancelled)
            {
                Closing();
            }
            else if (!_finished)
            {
                PassTurn();
                failure = !_turnGiven && _output.UnflushedBytes > 0 ? Flush() : null;
            }
        }

        Fail(failure);
    }

    /// <summary>Closes the writer: no more messages; every queued sender learns that its message was not sent. Call under the lock.</summary>
    private void Closing()
    {
        _closed = true;
        while (_waiting.TryDequeue(out var queued))
        {
            queued.TrySetResult(false);
        }
    }

    /// <summary>Completes when no flush waits for the transport any more. Never faults.</summary>
    /// <returns>The wait.</returns>
    public async Task WhenFlushedAsync()
    {
        while (Volatile.Read(ref _flushWait) is { } wait)
        {
            await wait.ConfigureAwait(false);
        }
    }

    /// <summary>Lets go of the pipe: from now on it is not touched. Returns the messages never flushed.</summary>
    /// <returns>How many framed messages were not flushed.</returns>
    public int Finish()
    {
        lock (_lock)
        {
            Closing();
            _finished = true;
            _output.WithholdHeld();
            var discarded = _unflushedMessages;
            _unflushedMessages = 0;
            return discarded;
        }
    }

    /// <summary>Ends the session with <paramref name="failure"/>, if any. Call outside the lock.</summary>
    private void Fail(Exception? failure)
    {
        if (failure is not null)
        {
            _owner.OutboundFailed(this, failure);
        }
    }

    private static void ThrowIfTransportClosed(FlushResult result)
    {
        if (result.IsCompleted && !result.IsCanceled)
        {
            throw new IOException("The transport stopped accepting outbound data: the connection is closed.");
        }
    }
}
