using System.Buffers;
using System.IO.Pipelines;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// Bottom half: the read loop and the write loop, which run the session while it is Running.
public abstract partial class PipeProtocol<TMessage>
{
    /// <summary>
    /// Runs one loop to its end (QEMU aqmp's <c>_bh_loop_forever</c>). A loop that fails records
    /// its error as the root cause and schedules a disconnect (for the output loop, one that lets
    /// the input be delivered first); the task itself never faults.
    /// </summary>
    private async Task RunLoopAsync(string name, Func<Task> loop, CancellationToken abort, bool isOutput)
    {
        try
        {
            await loop().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested || Volatile.Read(ref _disconnect) is not null)
        {
            // Torn down, or disconnecting, while the loop (say, OnMessageAsync) was waiting or
            // sending: a normal end, not a root cause.
        }
        catch (Exception ex) when (IsPeerCloseExpected && ex is IOException or System.Net.Sockets.SocketException)
        {
            // The peer went away (FIN or reset) when the protocol expected it to: end without an error.
            PipeProtocolLog.PeerClosedAsExpected(Logger);
            lock (_gate)
            {
                ScheduleDisconnect();
            }
        }
        catch (Exception ex)
        {
            if (ex is EndOfStreamException)
            {
                PipeProtocolLog.LoopEndOfStream(Logger, name, PipeProtocolLog.Summarize(ex));
            }
            else
            {
                PipeProtocolLog.LoopFailed(Logger, name, PipeProtocolLog.Summarize(ex), ex);
            }

            RecordRootCause(ex);
            lock (_gate)
            {
                ScheduleDisconnect(outputFailed: isOutput);
            }
        }
        finally
        {
            PipeProtocolLog.LoopExited(Logger, name);
        }
    }

    /// <summary>
    /// The canonical pipe read loop: read, parse every frame the buffer holds, deliver each,
    /// flush the replies the handlers sent, advance past what was consumed and examined, stop when
    /// the peer ends the stream. Once a handler has asked to end the session
    /// (<see cref="MessageContext{TMessage}.EndSession"/>), it delivers nothing more but keeps
    /// reading (and discarding) until the teardown stops it, so that a peer that answers what it
    /// reads never blocks the drain.
    /// </summary>
    private async Task ReadLoopAsync(TransportConnection connection, OutboundWriter<TMessage> outbound, MessageContext<TMessage> context, CancellationToken abort)
    {
        var input = connection.Pipe.Input;
        // Marks this flow (and OnMessageAsync, which runs in it) as the read loop: see DisconnectAsync.
        SessionFlow.Enter(this, SessionFlowRole.ReadLoop);

        // Where the framer stopped looking in an incomplete frame, handed back to it on the next
        // read so that it need not search the same bytes again (default: nothing examined yet).
        SequencePosition resume = default;
        while (true)
        {
            var result = await input.ReadAsync().ConfigureAwait(false);
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = ResumeFrom(resume, buffer);
            try
            {
                if (result.IsCanceled)
                {
                    // Stopped by the disconnect; the read is still handed back (finally), so that
                    // a graceful close may drain the same reader.
                    return;
                }

                if (context.IsEndRequested)
                {
                    // A handler ended the session: nothing more is delivered while the drain runs.
                    consumed = examined = buffer.End;
                    if (result.IsCompleted)
                    {
                        return;
                    }

                    continue;
                }

                // While this thread runs the handlers synchronously, their replies are left for
                // this loop to flush (the mark is cleared before every wait, and set again after it).
                context.SetHandlingThread(true);
                while (_framer.TryReadMessage(buffer, ref consumed, ref examined, out var message))
                {
                    buffer = buffer.Slice(consumed);
                    if (abort.IsCancellationRequested)
                    {
                        return;
                    }

                    var handled = OnMessageAsync(OnInbound(message), context, abort);
                    if (!handled.IsCompletedSuccessfully)
                    {
                        // The handler waits (or failed): what it sent leaves now, not after it.
                        context.SetHandlingThread(false);
                        outbound.FlushDeferred();
                        await handled.ConfigureAwait(false);
                        context.SetHandlingThread(true);
                    }
                    else
                    {
                        handled.GetAwaiter().GetResult(); // consumed once, so that a pooled source is released
                    }

                    if (context.IsEndRequested)
                    {
                        // The rest of this read is not delivered; it is discarded with what follows.
                        consumed = examined = buffer.End;
                        break;
                    }
                }

                // Every frame of this read is handled: the replies to them leave together.
                context.SetHandlingThread(false);
                outbound.FlushDeferred();

                if (result.IsCompleted)
                {
                    // Every complete frame is delivered; then a reset the transport deferred is the
                    // cause of the end, else what is left is the framer's to judge.
                    var inputError = connection.InputError;
                    if (inputError is null && !buffer.IsEmpty && !context.IsEndRequested && _framer.TryReadFinalMessage(buffer, out var last))
                    {
                        consumed = examined = buffer.End;
                        await OnMessageAsync(OnInbound(last), context, abort).ConfigureAwait(false);
                    }

                    if (context.IsEndRequested)
                    {
                        // The peer closed after a handler ended the session: the end it asked for.
                        return;
                    }

                    if (!IsPeerCloseExpected)
                    {
                        ThrowPeerGone(connection);
                    }

                    // A clean end the protocol expected: the session still ends, without an error.
                    PipeProtocolLog.PeerClosedAsExpected(Logger);
                    lock (_gate)
                    {
                        ScheduleDisconnect();
                    }

                    return;
                }
            }
            catch
            {
                // The session is failing (say, a frame over the limit): never hand back an examined
                // position behind the last one, or a Pipe-backed transport (a caller's IDuplexPipe)
                // would count every buffered byte as unexamined again and stop pausing its writer
                // while the teardown runs.
                examined = result.Buffer.End;
                throw;
            }
            finally
            {
                context.SetHandlingThread(false);
                input.AdvanceTo(consumed, examined);
                resume = ResumeAfter(buffer, consumed, examined);
            }
        }
    }

    /// <summary>
    /// Where the framer starts looking in <paramref name="buffer"/>: the position it stopped at in
    /// an incomplete frame on the previous read (<see cref="ResumeAfter"/>), else the buffer's start.
    /// </summary>
    private static SequencePosition ResumeFrom(SequencePosition resume, in ReadOnlySequence<byte> buffer)
        => resume.GetObject() is null ? buffer.Start : resume;

    /// <summary>
    /// The position to hand back to the framer on the next read: where it stopped looking, while
    /// a partial frame (<paramref name="remainder"/>, from <paramref name="consumed"/>) is left;
    /// none once everything is consumed, when the pipe may recycle the segment it points into.
    /// </summary>
    private static SequencePosition ResumeAfter(in ReadOnlySequence<byte> remainder, SequencePosition consumed, SequencePosition examined)
        => remainder.IsEmpty || examined.Equals(consumed) ? default : examined;

    /// <summary>
    /// The write loop: senders frame their messages straight into the transport's pipe (see
    /// <see cref="OutboundWriter{TMessage}"/>); this loop wakes when a batch starts and flushes
    /// whatever has been framed by then, once. It ends when the writer is closed and everything
    /// framed is flushed, or when torn down.
    /// </summary>
    private static async Task WriteLoopAsync(OutboundWriter<TMessage> outbound, CancellationToken abort)
    {
        SessionFlow.Clear();
        while (true)
        {
            await outbound.WaitForFlushRequestAsync().ConfigureAwait(false);
            if (abort.IsCancellationRequested)
            {
                return;
            }

            await outbound.FlushAsync().ConfigureAwait(false);
            if (outbound.IsDrained)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Ends the session with <paramref name="error"/> as its root cause, when a sender's flush or
    /// a framer that broke off mid-frame failed it outside both loops.
    /// </summary>
    private void FailSession(OutboundWriter<TMessage> outbound, Exception error)
    {
        PipeProtocolLog.LoopFailed(Logger, "Sender", PipeProtocolLog.Summarize(error), error);
        lock (_gate)
        {
            if (_outbound == outbound)
            {
                RecordRootCause(error);
                ScheduleDisconnect(outputFailed: true);
            }
        }
    }
}
