using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

// File descriptors that travel with messages, on sessions over a Unix socket that allow it.
public abstract partial class PipeProtocol<TMessage>
{
    /// <summary>Whether this session passes file descriptors with its messages (<see cref="PipeProtocolOptions.AllowDescriptorPassing"/>).</summary>
    public bool AllowsDescriptorPassing => _options.AllowDescriptorPassing;

    /// <summary>
    /// Sends a message with file descriptors: as <see cref="SendAsync(TMessage, CancellationToken)"/>
    /// (framed at once, in call order, the same backpressure, states and errors), and the
    /// descriptors of <paramref name="descriptors"/> go with the message's first byte (<c>SCM_RIGHTS</c>),
    /// which is sent alone for it: the peer receives them within this message's bytes, never an
    /// earlier one's. Each handle stays referenced until its descriptor is sent (or the session
    /// ends first), so the caller may dispose it as soon as this returns.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="descriptors">The handles (files, pipes, sockets) whose descriptors to send: 1 to 253.</param>
    /// <param name="cancellationToken">Stops waiting for the transport; the message and descriptors are then not sent.</param>
    /// <returns>A task that completes when the message is framed.</returns>
    /// <exception cref="NotSupportedException">The session does not pass descriptors (<see cref="PipeProtocolOptions.AllowDescriptorPassing"/> is off).</exception>
    /// <exception cref="ArgumentException">No descriptors, more than 253, or a null handle.</exception>
    /// <exception cref="ObjectDisposedException">A handle is closed or invalid.</exception>
    /// <exception cref="StateException">As for <see cref="SendAsync(TMessage, CancellationToken)"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired; nothing was sent.</exception>
    protected ValueTask SendWithDescriptorsAsync(TMessage message, ReadOnlyMemory<SafeHandle> descriptors, CancellationToken cancellationToken = default)
        => SendWithDescriptorsCoreAsync(message, descriptors, readLoopFlushes: false, session: null, cancellationToken);

    /// <summary>Sends <paramref name="message"/> with <paramref name="descriptors"/>; with <paramref name="session"/>, only into that session.</summary>
    internal async ValueTask SendWithDescriptorsCoreAsync(TMessage message, ReadOnlyMemory<SafeHandle> descriptors, bool readLoopFlushes, OutboundWriter<TMessage>? session, CancellationToken cancellationToken)
    {
        if (!_options.AllowDescriptorPassing)
        {
            throw DescriptorsNotAllowed();
        }

        var referenced = OutboundDescriptors.Reference(descriptors.Span);
        try
        {
            await SendManyAsync(new[] { message }, readLoopFlushes, session, cancellationToken, referenced).ConfigureAwait(false);
        }
        finally
        {
            if (!referenced.IsAttached)
            {
                // Not framed: the message is not sent, nor are its descriptors.
                referenced.Release();
            }
        }
    }

    /// <summary>The error for a descriptor call on a session that does not pass descriptors.</summary>
    internal static NotSupportedException DescriptorsNotAllowed()
        => new("This session does not pass file descriptors: set PipeProtocolOptions.AllowDescriptorPassing and connect over a Unix-domain socket.");

    /// <summary>Throws at once when this session passes descriptors and <paramref name="what"/> cannot carry them.</summary>
    /// <exception cref="NotSupportedException">Descriptors cannot pass over it.</exception>
    private void ThrowIfDescriptorsCannotPass(bool canPass, string what)
        => SocketTransport.ThrowIfDescriptorPassing(_options.AllowDescriptorPassing, canPass, what);

    /// <summary>As <see cref="ThrowIfDescriptorsCannotPass(bool, string)"/> for a connection to, or a listener on, <paramref name="endPoint"/>.</summary>
    private void ThrowIfDescriptorsCannotPass(EndPoint endPoint, bool tls)
        => ThrowIfDescriptorsCannotPass(endPoint is UnixDomainSocketEndPoint && !tls, tls ? "a TLS connection" : "a TCP connection");

    /// <summary>As <see cref="ThrowIfDescriptorsCannotPass(bool, string)"/> for <paramref name="socket"/>.</summary>
    private void ThrowIfDescriptorsCannotPass(Socket socket)
        => ThrowIfDescriptorsCannotPass(socket.AddressFamily == AddressFamily.Unix, "a TCP socket");
}
