using Aqmp.Pipelines.Transports;
using Microsoft.Win32.SafeHandles;
using System.Runtime.InteropServices;

namespace Aqmp.Pipelines.Session;

/// <summary>
/// The message handler's own view of its session, handed to every call of
/// <see cref="PipeProtocol{TMessage}.OnMessageAsync"/> while the session runs: replies sent
/// through it leave with the rest of the read they answer, in one flush, and it can end the
/// session without waiting for itself. One instance serves every message of one session (nothing
/// is allocated per message); its members are thread-safe.
/// </summary>
/// <typeparam name="TMessage">The protocol's message type.</typeparam>
public sealed class MessageContext<TMessage>
{
    private readonly PipeProtocol<TMessage> _session;
    private readonly OutboundWriter<TMessage> _outbound;
    private int _handlingThread;
    private volatile bool _endRequested;
    private long _messageStart;   // the inbound stream range of the message being handled, when descriptors pass
    private long _messageEnd;

    internal MessageContext(PipeProtocol<TMessage> session, OutboundWriter<TMessage> outbound)
    {
        _session = session;
        _outbound = outbound;
    }

    /// <summary>Whether a handler of this session asked it to end with <see cref="EndSession"/>.</summary>
    public bool IsEndRequested => _endRequested;

    /// <summary>
    /// Sends a message as the session's own <c>SendAsync</c> does (framed at once, in call order,
    /// with its backpressure, cancellation and errors), but flushed differently: a message sent
    /// before the handler first yields is flushed by the read loop itself, together with the
    /// replies to the rest of the read, as soon as every message of the read is handled or the
    /// handler yields; one sent later is flushed at once, as <c>SendAsync</c> does.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Stops waiting for the transport; the message is then not sent.</param>
    /// <returns>A task that completes when the message is framed.</returns>
    /// <exception cref="OperationCanceledException">
    /// <paramref name="cancellationToken"/> fired, or the session is disconnecting and the message
    /// can no longer be sent (this ends the handler, not the session with an error); the message was not sent.
    /// </exception>
    /// <exception cref="StateException">The session has ended; the message was not sent.</exception>
    /// <exception cref="Exception">
    /// <see cref="PipeProtocol{TMessage}.OnOutbound"/> or the framer refused the message, as for the session's own <c>SendAsync</c>.
    /// </exception>
    public ValueTask SendAsync(TMessage message, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return _outbound.TryWrite(message, IsHandlingThread) == OutboundWriter<TMessage>.WriteResult.Written
            ? ValueTask.CompletedTask
            : _session.SendManyAsync(new[] { message }, false, _outbound, cancellationToken);
    }

    /// <summary>
    /// Sends several replies in one call (one lock, in order; see the session's <c>SendManyAsync</c>),
    /// flushed as <see cref="SendAsync"/> flushes one.
    /// </summary>
    /// <param name="messages">The messages, in order.</param>
    /// <param name="cancellationToken">Stops waiting for the transport: those framed by then are sent, the rest are not.</param>
    /// <returns>A task that completes when every message is framed.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired, or the session is disconnecting.</exception>
    /// <exception cref="StateException">The session has ended.</exception>
    /// <exception cref="Exception">A message was refused: those before it were sent, it and those after it were not.</exception>
    public ValueTask SendManyAsync(ReadOnlyMemory<TMessage> messages, CancellationToken cancellationToken = default)
        => _session.SendManyAsync(messages, IsHandlingThread, _outbound, cancellationToken);

    /// <summary>
    /// Sends a message with file descriptors, as <see cref="PipeProtocol{TMessage}.SendWithDescriptorsAsync"/>
    /// does, flushed as <see cref="SendAsync"/> flushes a reply.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="descriptors">The handles whose descriptors go with the message's first byte (1 to 253).</param>
    /// <param name="cancellationToken">Stops waiting for the transport; the message and descriptors are then not sent.</param>
    /// <returns>A task that completes when the message is framed.</returns>
    /// <exception cref="NotSupportedException">The session does not pass descriptors (<see cref="PipeProtocolOptions.AllowDescriptorPassing"/>).</exception>
    /// <exception cref="ArgumentException">No descriptors, more than 253, or a null handle.</exception>
    /// <exception cref="ObjectDisposedException">A handle is closed.</exception>
    /// <exception cref="OperationCanceledException">As for <see cref="SendAsync"/>.</exception>
    /// <exception cref="StateException">As for <see cref="SendAsync"/>.</exception>
    public ValueTask SendWithDescriptorsAsync(TMessage message, ReadOnlyMemory<SafeHandle> descriptors, CancellationToken cancellationToken = default)
        => _session.SendWithDescriptorsCoreAsync(message, descriptors, IsHandlingThread, _outbound, cancellationToken);

    /// <summary>
    /// Takes the file descriptors that arrived within the bytes of the message being handled (its
    /// first byte to its last, and the bytes the framer skipped before it), in arrival order, as
    /// handles the caller now owns and must dispose. Descriptors nobody takes are closed when the
    /// handler returns; call this before. A second call for the same message returns none.
    /// </summary>
    /// <returns>The handles; empty when none arrived, or when called outside a handler.</returns>
    /// <exception cref="NotSupportedException">The session does not pass descriptors (<see cref="PipeProtocolOptions.AllowDescriptorPassing"/>).</exception>
    public SafeFileHandle[] TakeDescriptors()
    {
        var connection = Descriptors ?? throw PipeProtocol<TMessage>.DescriptorsNotAllowed();
        var (start, end) = (Volatile.Read(ref _messageStart), Volatile.Read(ref _messageEnd));
        return end > start ? connection.TakeDescriptors(start, end) : [];
    }

    /// <summary>The read loop hands <paramref name="reader"/>'s last message to the handler.</summary>
    internal void BeginMessage(MessageReader<TMessage> reader)
    {
        if (Descriptors is not null)
        {
            Volatile.Write(ref _messageStart, reader.MessageStart);
            Volatile.Write(ref _messageEnd, reader.MessageEnd);
        }
    }

    /// <summary>The handler returned: the descriptors of its message nobody took are closed.</summary>
    internal void EndMessage()
    {
        if (Descriptors is { } connection)
        {
            var end = Volatile.Read(ref _messageEnd);
            Volatile.Write(ref _messageStart, end);
            connection.CloseDescriptorsBefore(end);
        }
    }

    /// <summary>
    /// Ends the session gracefully: the session goes <see cref="Runstate.Disconnecting"/> at once
    /// and its output closes (send the last replies before calling this: one sent after it is
    /// refused), what was sent is flushed, no further message is delivered once the handler
    /// returns, and the session reaches <see cref="Runstate.Idle"/> by itself without an error.
    /// Returns at once; idempotent; no effect once the session is disconnecting already, or when
    /// this context's session is over.
    /// </summary>
    public void EndSession()
    {
        _endRequested = true;
        _session.EndSession(_outbound);
    }

    /// <summary>The connection descriptors pass over, when the session allows it.</summary>
    internal UnixDescriptorConnection? Descriptors { get; init; }

    private bool IsHandlingThread => Volatile.Read(ref _handlingThread) == Environment.CurrentManagedThreadId;

    /// <summary>Marks the current thread as the read loop running handlers synchronously (0: none).</summary>
    internal void SetHandlingThread(bool handling) => Volatile.Write(ref _handlingThread, handling ? Environment.CurrentManagedThreadId : 0);
}
