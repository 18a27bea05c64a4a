namespace Aqmp.Pipelines.Session;

/// <summary>
/// The handshake's own view of its session, handed to
/// <see cref="PipeProtocol{TMessage}.EstablishSessionAsync"/>: it sends and receives messages
/// directly on the new connection while the session is <see cref="Runstate.Connecting"/>, before
/// the read loop runs. Only the handshake it was made for may use it, and only until that
/// handshake returns; it is not thread-safe (one call at a time, as a handshake is one flow).
/// </summary>
/// <typeparam name="TMessage">The protocol's message type.</typeparam>
public sealed class HandshakeContext<TMessage>
{
    private readonly PipeProtocol<TMessage> _session;
    private readonly MessageReader<TMessage> _reader;
    private volatile bool _over;

    internal HandshakeContext(PipeProtocol<TMessage> session, MessageReader<TMessage> reader)
    {
        _session = session;
        _reader = reader;
    }

    /// <summary>
    /// Frames <paramref name="message"/> (through <see cref="PipeProtocol{TMessage}.OnOutbound"/>)
    /// and flushes it to the peer before returning.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Stops waiting for the transport to take the bytes.</param>
    /// <returns>A task that completes when the message is flushed.</returns>
    /// <exception cref="InvalidOperationException">The handshake is over: the session's own calls send from now on.</exception>
    /// <exception cref="EndOfStreamException">The peer closed the connection.</exception>
    /// <exception cref="IOException">The connection failed (a reset).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired, or the attempt was cancelled.</exception>
    public ValueTask SendAsync(TMessage message, CancellationToken cancellationToken = default)
    {
        ThrowIfOver();
        return _session.SendDuringHandshakeAsync(_reader, message, cancellationToken);
    }

    /// <summary>
    /// Reads the next message from the connection (through <see cref="PipeProtocol{TMessage}.OnInbound"/>).
    /// A message that points into the pipe's memory stays valid until the next call or the end of
    /// the handshake; whatever the handshake leaves unread is delivered to
    /// <see cref="PipeProtocol{TMessage}.OnMessageAsync"/> once the session runs.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The next message.</returns>
    /// <exception cref="InvalidOperationException">The handshake is over: messages go to <c>OnMessageAsync</c> from now on.</exception>
    /// <exception cref="EndOfStreamException">The peer closed the connection at a frame boundary.</exception>
    /// <exception cref="Framing.IncompleteFrameException">The peer closed the connection in the middle of a frame.</exception>
    /// <exception cref="Framing.FrameTooLargeException">The next frame is over the framer's limit.</exception>
    /// <exception cref="ProtocolException">The framer found the bytes malformed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public ValueTask<TMessage> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfOver();
        return _session.ReceiveDuringHandshakeAsync(_reader, cancellationToken);
    }

    /// <summary>Called by the session when the handshake has returned (or failed).</summary>
    internal void End() => _over = true;

    private void ThrowIfOver()
    {
        if (_over)
        {
            throw new InvalidOperationException("The handshake is over: this context sends and receives only within EstablishSessionAsync.");
        }
    }
}
