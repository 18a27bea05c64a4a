using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// Bottom half: the read loop, which runs the session while it is Running, and the senders' failures.
public abstract partial class PipeProtocol<TMessage>
{
    /// <summary>
    /// Starts the session on the attempt's transport: makes its writer and starts the read loop
    /// on what the handshake left unread. Call under the gate, then enter the state it returns.
    /// </summary>
    private RunningState StartSession(ConnectingState connecting)
    {
        var (connection, reader) = (connecting.Connection!, connecting.Reader!);
        var descriptors = connection as UnixDescriptorConnection;
        var outbound = new OutboundWriter<TMessage>((SendBuffer)connection.Pipe.Output, _framer, this, _options.OutboundBatchBytes) { Descriptors = descriptors, Activity = MessageActivity };
        var abort = new CancellationTokenSource();
        var context = new MessageContext<TMessage>(this, outbound) { Descriptors = descriptors };
        var readLoop = RunReadLoopAsync(reader, outbound, context, abort.Token);
        return new RunningState(connection, outbound, abort, readLoop);
    }

    /// <summary>
    /// The read loop (QEMU aqmp's <c>_bh_loop_forever</c>), the canonical pipe read loop: deliver
    /// every message the held read contains, flush the replies the handlers sent, then hand the
    /// read back and wait for more (through the session's <see cref="MessageReader{TMessage}"/>,
    /// which the handshake used before it, so what the handshake left unread comes first); stop
    /// when the peer ends the stream. Once a handler has asked to end the session
    /// (<see cref="MessageContext{TMessage}.EndSession"/>), it delivers nothing more but keeps
    /// reading (and discarding) until the teardown stops it, so that a peer that answers what it
    /// reads never blocks the drain. A loop that fails schedules a disconnect with its error as the
    /// root cause; the task itself never faults.
    /// </summary>
    private async Task RunReadLoopAsync(MessageReader<TMessage> reader, OutboundWriter<TMessage> outbound, MessageContext<TMessage> context, CancellationToken abort)
    {
        const string name = "Reader";

        // On the thread pool from here on, as Task.Run would start it, without the task it makes.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        // Marks this flow (and OnMessageAsync, which runs in it) as the read loop: see DisconnectAsync.
        SessionFlow.Enter(this, SessionFlowRole.ReadLoop);
        try
        {
            while (true)
            {
                if (context.IsEndRequested)
                {
                    // A handler ended the session: nothing more is delivered while the drain runs.
                    reader.DiscardHeld();
                }
                else if (await DeliverHeldAsync(reader, outbound, context, abort).ConfigureAwait(false))
                {
                    return;
                }

                if (reader.IsCompleted)
                {
                    if (!context.IsEndRequested && !IsPeerCloseExpected)
                    {
                        reader.ThrowPeerGone();
                    }

                    if (!context.IsEndRequested)
                    {
                        // A clean end the protocol expected: the session still ends, without an error.
                        PipeProtocolLog.PeerClosedAsExpected(Logger);
                        lock (_gate)
                        {
                            ScheduleDisconnect();
                        }
                    }

                    return;
                }

                if (!reader.Hold(await reader.ReleaseAndReadAsync().ConfigureAwait(false)))
                {
                    // Stopped by the disconnect; the read is handed back, so that a graceful close
                    // may drain the same reader.
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            // What follows (the runstate handlers, the teardown it starts) is not the read loop.
            SessionFlow.Clear();

            // Torn down, or disconnecting, while the loop (say, OnMessageAsync) was waiting or
            // sending: a normal end, not a root cause.
            var stopped = ex is OperationCanceledException && (abort.IsCancellationRequested || _state is DisconnectingState);

            // The read is handed back fully examined, or a Pipe-backed transport (a caller's
            // IDuplexPipe) would count every buffered byte as new and stop pausing its writer
            // while the teardown runs.
            reader.Release(failed: true);
            context.SetHandlingThread(false);
            if (!stopped)
            {
                var rootCause = RootCauseOf(name, ex);
                lock (_gate)
                {
                    ScheduleDisconnect(rootCause: rootCause);
                }
            }
        }
        finally
        {
            context.SetHandlingThread(false);
            reader.Release();
            PipeProtocolLog.LoopExited(Logger, name);
        }
    }

    /// <summary>
    /// Hands every complete message of the held read to <see cref="OnMessageAsync"/>, in order,
    /// then, at the end of the stream, the framer's final message if any; flushes the replies.
    /// Returns true when the loop must stop (the session is being torn down).
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> DeliverHeldAsync(MessageReader<TMessage> reader, OutboundWriter<TMessage> outbound, MessageContext<TMessage> context, CancellationToken abort)
    {
        // While this thread runs the handlers synchronously, their replies are left for this loop
        // to flush (the mark is cleared before every wait, and set again after it).
        context.SetHandlingThread(true);
        var delivered = 0;
        while (reader.TryRead(out var message) || reader.TryReadFinal(out message))
        {
            if (abort.IsCancellationRequested)
            {
                return true;
            }

            delivered++;

            context.BeginMessage(reader);
            try
            {
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
            }
            catch (OperationCanceledException) when (!abort.IsCancellationRequested && IsDeliveringInputFirst)
            {
                // A write failed and the output is closed: this handler's reply could not be sent,
                // which ends the handler; the input that arrived first is still delivered.
                context.SetHandlingThread(true);
            }
            finally
            {
                context.EndMessage();
            }

            if (context.IsEndRequested)
            {
                // The rest of this read is not delivered; it is discarded with what follows.
                reader.DiscardHeld();
                break;
            }
        }

        // Every frame of this read is handled: the replies to them leave together.
        context.SetHandlingThread(false);
        outbound.FlushDeferred();
        if (delivered > 0)
        {
            MessageActivity?.MessagesReceived(delivered);
        }

        return false;
    }

    /// <summary>Whether a failed write is ending the session while the read loop delivers what had arrived (input first).</summary>
    private bool IsDeliveringInputFirst => _state is DisconnectingState { Teardown.OutputFailed: true };

    /// <summary>
    /// Ends the session of <paramref name="outbound"/>, unless it is over already (a later one is
    /// never ended). Without <paramref name="error"/>, for <see cref="MessageContext{TMessage}.EndSession"/>:
    /// a graceful disconnect, as if the application had called <see cref="DisconnectAsync"/>, so the
    /// runstate returns to <see cref="Runstate.Idle"/> by itself once the teardown is done; no effect
    /// unless <see cref="Runstate.Running"/>. With it, when a flush or a framer that broke off
    /// mid-frame failed: <paramref name="error"/> is the root cause, unless the peer was expected to
    /// close (then there is none); either way the input that arrived first is delivered first.
    /// </summary>
    internal void EndSession(OutboundWriter<TMessage> outbound, Exception? error = null)
    {
        var rootCause = error is null ? null : RootCauseOf("Sender", error);
        lock (_gate)
        {
            if (_state.SessionOutbound == outbound && (error is not null || _state is RunningState))
            {
                ScheduleDisconnect(requested: error is null, outputFailed: error is not null, rootCause: rootCause);
            }
        }
    }

    /// <inheritdoc/>
    TMessage IOutboundOwner<TMessage>.FilterOutbound(TMessage message) => OnOutbound(message);

    /// <inheritdoc/>
    void IOutboundOwner<TMessage>.OutboundFailed(OutboundWriter<TMessage> outbound, Exception error) => EndSession(outbound, error);

    /// <summary>
    /// Logs how a loop or a send ended the session with <paramref name="error"/>, and returns the
    /// root cause it makes: none when it is the peer going away (FIN or reset) as the protocol
    /// expected (<see cref="IsPeerCloseExpected"/>), else the error itself.
    /// </summary>
    private Exception? RootCauseOf(string loop, Exception error)
    {
        if (IsPeerCloseExpected && error is IOException or System.Net.Sockets.SocketException)
        {
            PipeProtocolLog.PeerClosedAsExpected(Logger);
            return null;
        }

        if (error is EndOfStreamException)
        {
            PipeProtocolLog.LoopEndOfStream(Logger, loop, PipeProtocolLog.Summarize(error));
        }
        else
        {
            PipeProtocolLog.LoopFailed(Logger, loop, PipeProtocolLog.Summarize(error), error);
        }

        return error;
    }
}
