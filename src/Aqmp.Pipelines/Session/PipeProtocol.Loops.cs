using System.IO.Pipelines;
using System.Threading.Channels;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// Bottom half: the read loop and the write loop, which run the session while it is Running.
public abstract partial class PipeProtocol<TMessage>
{
    /// <summary>
    /// Runs one loop to its end (the seed's <c>_bh_loop_forever</c>). A loop that fails records
    /// its error as the root cause and schedules a disconnect; the task itself never faults.
    /// </summary>
    private async Task RunLoopAsync(string name, Func<Task> loop, CancellationToken abort)
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
                ScheduleDisconnect();
            }
        }
        finally
        {
            PipeProtocolLog.LoopExited(Logger, name);
        }
    }

    /// <summary>
    /// The canonical pipe read loop: read, parse every frame the buffer holds, deliver each,
    /// advance past what was consumed and examined, stop when the peer ends the stream.
    /// </summary>
    private async Task ReadLoopAsync(TransportConnection connection, CancellationToken abort)
    {
        var input = connection.Pipe.Input;
        // Marks this flow (and OnMessageAsync, which runs in it) as the read loop: see DisconnectAsync.
        SessionFlow.Enter(this, SessionFlowRole.ReadLoop);
        while (true)
        {
            var result = await input.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled)
            {
                return;
            }

            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = buffer.Start;
            try
            {
                while (_framer.TryReadMessage(buffer, ref consumed, ref examined, out var message))
                {
                    buffer = buffer.Slice(consumed);
                    if (abort.IsCancellationRequested)
                    {
                        return;
                    }

                    await OnMessageAsync(OnInbound(message), abort).ConfigureAwait(false);
                }

                if (result.IsCompleted)
                {
                    // Every complete frame is delivered; then a reset the transport deferred is the
                    // cause of the end, else what is left is the framer's to judge.
                    var inputError = connection.InputError;
                    if (inputError is null && !buffer.IsEmpty && _framer.TryReadFinalMessage(buffer, out var last))
                    {
                        consumed = examined = buffer.End;
                        await OnMessageAsync(OnInbound(last), abort).ConfigureAwait(false);
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
            finally
            {
                input.AdvanceTo(consumed, examined);
            }
        }
    }

    /// <summary>
    /// The write loop: frame the messages already queued (up to the queue's capacity or
    /// <see cref="PipeProtocolOptions.OutboundBatchBytes"/>), then flush once; end when the queue is
    /// completed and empty, or when torn down.
    /// </summary>
    private async Task WriteLoopAsync(PipeWriter output, ChannelReader<TMessage> queue, CancellationToken abort)
    {
        SessionFlow.Clear();
        var batchLimit = _options.OutboundQueueCapacity;
        var batchBytes = _options.OutboundBatchBytes;
        var measurable = output.CanGetUnflushedBytes;
        while (await queue.WaitToReadAsync().ConfigureAwait(false))
        {
            // A batch ends with the queue, at the queue's capacity, or once it holds enough bytes:
            // flushing then lets the pipe's backpressure act before buffers pile up.
            for (var written = 0; written < batchLimit && !abort.IsCancellationRequested && queue.TryRead(out var message); written++)
            {
                _framer.WriteMessage(OnOutbound(message), output);
                if (measurable && output.UnflushedBytes >= batchBytes)
                {
                    break;
                }
            }

            if (abort.IsCancellationRequested)
            {
                return;
            }

            var flush = await output.FlushAsync().ConfigureAwait(false);
            if (flush.IsCanceled)
            {
                return;
            }

            if (flush.IsCompleted)
            {
                throw new IOException("The transport stopped accepting outbound data: the connection is closed.");
            }
        }
    }
}
