using System.IO.Pipelines;
using System.Net;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// An established full-duplex byte connection: a socket, a stream or a pipe pair, seen as an
/// <see cref="IDuplexPipe"/>. Sessions run on these; implement it to plug in another transport.
/// </summary>
/// <remarks>
/// The user of a connection must stop reading <see cref="Pipe"/>'s input and writing its output
/// before calling <see cref="CloseAsync"/> or <see cref="Abort"/>: a
/// <see cref="System.IO.Pipelines.PipeReader"/> and <see cref="System.IO.Pipelines.PipeWriter"/> each
/// have a single owner. Both calls are idempotent.
/// </remarks>
public abstract class TransportConnection : IAsyncDisposable
{
    /// <summary>The connection's pipes: <c>Input</c> carries bytes from the peer, <c>Output</c> to it.</summary>
    public abstract IDuplexPipe Pipe { get; }

    /// <summary>The local address, when the transport has one.</summary>
    public virtual EndPoint? LocalEndPoint => null;

    /// <summary>The peer's address, when the transport has one.</summary>
    public virtual EndPoint? RemoteEndPoint => null;

    /// <summary>
    /// The error that ended the input, when the transport reported it to the reader as the end of
    /// the stream so that the bytes received before it could still be read (a connection reset
    /// right after a last message), or the failure of a send that took the reset the read then saw
    /// as a plain end; null while the input is open or after a clean end. A reader that reaches the
    /// end of <c>Input</c> checks this to tell a reset from a close.
    /// </summary>
    public virtual Exception? InputError => null;

    /// <summary>
    /// Waits until every byte flushed to <c>Output</c> so far has been taken by the socket or
    /// stream (handed to the operating system), without closing anything. The default completes
    /// at once: a pipe has nothing between its <c>Output</c> and the peer.
    /// </summary>
    /// <remarks>
    /// <c>Input</c> may be read while this waits, and should be: a peer that answers what it reads
    /// (an echo server) stops reading while its own answers are not read, and then the bytes still
    /// to send never leave. <see cref="CloseAsync"/> waits for the same thing after its caller has
    /// stopped reading, so a session calls this first.
    /// </remarks>
    /// <param name="cancellationToken">Stops the wait; nothing is discarded by it.</param>
    /// <returns>A task that completes when everything flushed so far was sent.</returns>
    /// <exception cref="IOException">The connection failed before every flushed byte was sent.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    /// <exception cref="ObjectDisposedException"><see cref="CloseAsync"/> or <see cref="Abort"/> was called.</exception>
    public virtual ValueTask WaitUntilSentAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <summary>
    /// Closes gracefully: every byte flushed to <c>Output</c> reaches the peer (the operating
    /// system), the sending direction is closed, inbound bytes are drained for at most the
    /// linger timeout, then everything is released.
    /// </summary>
    /// <param name="cancellationToken">Abandons the graceful part; resources are released regardless.</param>
    /// <returns>A task that completes when the connection is released.</returns>
    /// <exception cref="IOException">The connection failed before every flushed byte was sent.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public abstract ValueTask CloseAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Releases the connection at once, discarding anything not yet sent. Never throws.
    /// </summary>
    public abstract void Abort();

    /// <summary>Releases the connection at once, like <see cref="Abort"/>.</summary>
    /// <returns>A completed task.</returns>
    public ValueTask DisposeAsync()
    {
        Abort();
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public override string ToString() => $"{GetType().Name} {LocalEndPoint} <-> {RemoteEndPoint}";
}
