using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// Message I/O shared by both halves: sending, handshake receiving, and the filter hooks.
public abstract partial class PipeProtocol<TMessage>
{
    /// <summary>
    /// Sends a message. While <see cref="Runstate.Running"/>, frames it at once into the
    /// transport's send buffer, in the caller's context, flushes it to the transport's send loop,
    /// and returns. Messages
    /// are written in the order their calls were made. While the transport holds more unsent bytes
    /// than <see cref="PipeProtocolOptions.SendPauseThreshold"/> (the peer is not reading), the
    /// call waits (backpressure). The handshake sends through its <see cref="HandshakeContext{TMessage}"/>,
    /// and a handler's replies leave with the read they answer when sent through its
    /// <see cref="MessageContext{TMessage}"/>.
    /// </summary>
    /// <remarks>
    /// The message is framed before the call returns, so it may point into memory the caller
    /// reuses afterwards (an inbound message, a pooled buffer). <see cref="OnOutbound"/> runs in the
    /// caller's context as the message is framed; for a call that had to wait for the transport,
    /// on a thread-pool thread but in the caller's execution context (its <see cref="AsyncLocal{T}"/> values).
    /// </remarks>
    /// <param name="message">The message; <see cref="OnOutbound"/> sees it before it is framed.</param>
    /// <param name="cancellationToken">Stops waiting for the transport; the message is then not sent.</param>
    /// <returns>A task that completes when the message is framed.</returns>
    /// <exception cref="StateException">
    /// The runstate is not <see cref="Runstate.Running"/> (during the handshake too), or the
    /// session ended while the call waited; the message was not sent.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired; the message was not sent.</exception>
    /// <exception cref="Exception">
    /// <see cref="OnOutbound"/> or the framer refused the message: it was not sent and the session
    /// goes on; unless the framer failed after writing part of its frame, which ends the session
    /// with that error as its root cause.
    /// </exception>
    protected ValueTask SendAsync(TMessage message, CancellationToken cancellationToken = default)
    {
        // No send takes the gate: while Running, the writer's own lock orders the messages.
        cancellationToken.ThrowIfCancellationRequested();
        return _state is RunningState running && running.Outbound.TryWrite(message) == OutboundWriter<TMessage>.WriteResult.Written
            ? ValueTask.CompletedTask
            : SendQueuedAsync(new[] { message }, null, cancellationToken);
    }

    /// <summary>
    /// Sends several messages in one call, for a producer that has a burst of them: they are
    /// framed in order under one lock and flushed once, so no other sender's
    /// message comes between them unless the transport's buffer fills on the way (then the call
    /// waits, as <see cref="SendAsync(TMessage, CancellationToken)"/> does, and goes on in order).
    /// Otherwise as <see cref="SendAsync(TMessage, CancellationToken)"/>: framed before the call
    /// returns, the same states and errors.
    /// </summary>
    /// <param name="messages">The messages, in the order to send them.</param>
    /// <param name="cancellationToken">Stops waiting for the transport: the messages framed by then are sent, the rest are not.</param>
    /// <returns>A task that completes when every message is framed.</returns>
    /// <exception cref="StateException">The runstate is not <see cref="Runstate.Running"/>, or the session ended while the call waited.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    /// <exception cref="Exception">
    /// <see cref="OnOutbound"/> or the framer refused a message: those before it were sent, it and
    /// those after it were not (and the session goes on, as for one message).
    /// </exception>
    /// <remarks>In every failure the messages sent are a prefix of <paramref name="messages"/>.</remarks>
    protected ValueTask SendManyAsync(ReadOnlyMemory<TMessage> messages, CancellationToken cancellationToken = default)
        => SendManyAsync(messages, readLoopFlushes: false, session: null, cancellationToken);

    /// <summary>
    /// Frames what it can at once (one lock), then waits in call order for the rest; with
    /// <paramref name="session"/> (a context's own session), only into that session.
    /// </summary>
    internal ValueTask SendManyAsync(ReadOnlyMemory<TMessage> messages, bool readLoopFlushes, OutboundWriter<TMessage>? session, CancellationToken cancellationToken, OutboundDescriptors? descriptors = null)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var written = 0;
        return (session ?? (_state as RunningState)?.Outbound) is { } outbound
            && outbound.TryWrite(messages.Span, readLoopFlushes, out written, descriptors: descriptors) == OutboundWriter<TMessage>.WriteResult.Written
            ? ValueTask.CompletedTask
            : SendQueuedAsync(messages[written..], session, cancellationToken, descriptors);
    }

    /// <summary>
    /// The slow path of a send: waits in call order for room in the transport's buffer, then
    /// frames as many as it can at once, until all are framed; or raises why they cannot be sent.
    /// With <paramref name="session"/> (a context's own session), a later session is never written to.
    /// </summary>
    private async ValueTask SendQueuedAsync(ReadOnlyMemory<TMessage> rest, OutboundWriter<TMessage>? session, CancellationToken cancellationToken, OutboundDescriptors? descriptors = null)
    {
        var hasTurn = false;
        while (!rest.IsEmpty)
        {
            var state = _state;
            var outbound = SendableOutbound(state, session);
            var result = outbound.TryWrite(rest.Span, readLoopFlushes: false, out var written, hasTurn, descriptors);
            rest = rest[written..];
            hasTurn = false;
            if (result == OutboundWriter<TMessage>.WriteResult.Busy)
            {
                // Null: not busy any more (write again); false: closed first (the state says how).
                hasTurn = await (outbound.TryQueue(cancellationToken) ?? Task.FromResult(false)).ConfigureAwait(false);
            }
            else if (result == OutboundWriter<TMessage>.WriteResult.Closed)
            {
                // The session is ending: the next runstate says how.
                await state.Next.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The writer to queue a message into, or why messages cannot be queued: a
    /// <see cref="StateException"/> to the application, or, to the read loop while the session is
    /// disconnecting, an <see cref="OperationCanceledException"/> (a reply that can no longer be
    /// sent ends the handler, not the session with an error). With <paramref name="session"/> (a
    /// context's own session), only that session's writer. Takes no lock.
    /// </summary>
    private OutboundWriter<TMessage> SendableOutbound(SessionState state, OutboundWriter<TMessage>? session)
    {
        if (session is not null && session != state.SessionOutbound)
        {
            // A context kept past its session: the session it belongs to is over.
            throw new StateException("The session this context belongs to has ended.", state.Runstate, Runstate.Running, null);
        }

        if (state is RunningState running)
        {
            return running.Outbound;
        }

        var teardown = (state as DisconnectingState)?.Teardown;
        if (teardown is not null && SessionFlow.Is(this, SessionFlowRole.ReadLoop))
        {
            throw new OperationCanceledException("The session is disconnecting: the message was not sent.");
        }

        ObjectDisposedException.ThrowIf(_disposed && state is IdleState, this);
        throw NewStateException(Runstate.Running, teardown?.RootCause);
    }

    /// <summary>
    /// Reads one message directly from the transport for <see cref="HandshakeContext{TMessage}.ReceiveAsync"/>
    /// (QEMU's <c>aqmp</c> <c>_recv</c>); the read it holds is handed back when the loops start.
    /// </summary>
    internal async ValueTask<TMessage> ReceiveDuringHandshakeAsync(MessageReader<TMessage> reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (reader.TryRead(out var message) || reader.TryReadFinal(out message))
            {
                return OnInbound(message);
            }

            if (reader.IsCompleted)
            {
                reader.ThrowPeerGone();
            }

            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                throw new OperationCanceledException("The read was cancelled.");
            }
        }
    }

    /// <summary>
    /// Handles one inbound message, called by the read loop in arrival order, one at a time; the
    /// next message is not read until the returned task completes. The base does nothing.
    /// </summary>
    /// <param name="message">The message, already through <see cref="OnInbound"/>. See
    /// <see cref="IMessageFramer{TMessage}"/> for how long a message pointing into pipe memory stays valid.</param>
    /// <param name="context">
    /// The handler's access to its session (the same instance for every message of a session):
    /// replies sent through it leave with the read they answer; it can end the session.
    /// </param>
    /// <param name="cancellationToken">Fires when the session is being torn down.</param>
    /// <returns>A task that completes when the message is handled.</returns>
    /// <remarks>
    /// Runs in the read loop: awaiting a reply to a message sent from here would deadlock, and
    /// awaiting anything slow stalls reading. Replies sent through <paramref name="context"/>
    /// before the handler first yields leave when it returns or yields (with the replies to the
    /// rest of the read), so a handler must not block its thread waiting for the peer to act on one
    /// of them. Whatever this throws ends the session and is the error <see cref="DisconnectAsync"/>
    /// raises. To end the session from here, call <see cref="MessageContext{TMessage}.EndSession"/>
    /// and return. <see cref="DisconnectAsync"/> awaited from here starts the disconnect and then
    /// raises <see cref="OperationCanceledException"/> (the loop must stop before the session can
    /// end); let it propagate or return.
    /// </remarks>
    protected virtual ValueTask OnMessageAsync(TMessage message, MessageContext<TMessage> context, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>
    /// Whether the peer going away — ending the stream at a frame boundary, or resetting the
    /// connection — is, right now, the expected end of the session (QMP: after a successful
    /// <c>quit</c>). When true, the session still ends by itself (<see cref="Runstate.Disconnecting"/>)
    /// but without an error: <see cref="DisconnectAsync"/> raises nothing. The base returns false:
    /// the peer closing raises <see cref="EndOfStreamException"/>, a reset its <see cref="IOException"/>.
    /// Read by the loops when the stream ends or fails.
    /// </summary>
    protected virtual bool IsPeerCloseExpected => false;

    /// <summary>
    /// Filter hook for every inbound message, before <see cref="OnMessageAsync"/> (and for
    /// <see cref="HandshakeContext{TMessage}.ReceiveAsync"/>). The base logs <c>&lt;-- {message}</c> at Debug and returns it unchanged.
    /// </summary>
    /// <param name="message">The raw inbound message.</param>
    /// <returns>The message to deliver.</returns>
    protected virtual TMessage OnInbound(TMessage message)
    {
        if (Logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Debug))
        {
            PipeProtocolLog.Inbound(Logger, FormatForLog(message));
        }

        return message;
    }

    /// <summary>
    /// Filter hook for every outbound message, just before <see cref="SendAsync(TMessage, CancellationToken)"/> frames it, in
    /// the sender's context (see <see cref="SendAsync(TMessage, CancellationToken)"/>) and under the lock that orders outbound messages (so it must not call
    /// <see cref="SendAsync(TMessage, CancellationToken)"/> itself). An exception refuses the message. The base logs <c>--&gt; {message}</c> at
    /// Debug and returns it unchanged.
    /// </summary>
    /// <param name="message">The outbound message.</param>
    /// <returns>The message to write.</returns>
    protected virtual TMessage OnOutbound(TMessage message)
    {
        if (Logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Debug))
        {
            PipeProtocolLog.Outbound(Logger, FormatForLog(message));
        }

        return message;
    }

    /// <summary>
    /// How a message reads in the logs of <see cref="OnInbound"/> and <see cref="OnOutbound"/>;
    /// called only when Debug logging is on. The base uses <see cref="object.ToString"/>.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <returns>Its log text.</returns>
    protected virtual string FormatForLog(TMessage message) => message?.ToString() ?? "(null)";

    /// <summary>Frames and flushes a message directly, for <see cref="HandshakeContext{TMessage}.SendAsync"/> (QEMU's <c>aqmp</c> <c>_send</c>).</summary>
    internal async ValueTask SendDuringHandshakeAsync(MessageReader<TMessage> reader, TMessage message, CancellationToken cancellationToken)
    {
        var output = reader.Connection.Pipe.Output;
        _framer.WriteMessage(OnOutbound(message), output);
        var flush = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (flush.IsCompleted)
        {
            reader.ThrowPeerGone();
        }
    }
}
