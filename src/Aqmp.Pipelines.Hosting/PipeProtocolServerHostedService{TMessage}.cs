using Aqmp.Pipelines.Server;
using Microsoft.Extensions.Hosting;

namespace Aqmp.Pipelines.Hosting;

/// <summary>
/// Runs a <see cref="PipeProtocolServer{TMessage}"/> for the lifetime of a generic host: the host's
/// start binds every address and starts accepting; the host's stop shuts the server down
/// gracefully (see <see cref="PipeProtocolServer{TMessage}.ShutdownAsync"/>).
/// </summary>
/// <typeparam name="TMessage">The protocol's message type.</typeparam>
/// <param name="server">The server; this service shuts it down, and the host's container disposes it.</param>
/// <param name="addresses">Where to listen, as <see cref="Transports.AddressParser"/> reads them (<c>unix:/path</c>, <c>host:port</c>, <c>[v6]:port</c>).</param>
public sealed class PipeProtocolServerHostedService<TMessage>(PipeProtocolServer<TMessage> server, IReadOnlyList<string> addresses) : IHostedService
{
    /// <summary>The server this service runs.</summary>
    public PipeProtocolServer<TMessage> Server { get; } = server ?? throw new ArgumentNullException(nameof(server));

    /// <summary>How the server's shutdown ended, once the host has stopped it; null before.</summary>
    public ServerShutdownResult? ShutdownResult { get; private set; }

    /// <summary>
    /// Binds every address in order and starts accepting on each. If one cannot be bound, the
    /// server is shut down (closing the addresses bound before it) and the error is raised, which
    /// makes the host's start fail.
    /// </summary>
    /// <param name="cancellationToken">The host's start is abandoned: binding stops and the server is shut down.</param>
    /// <returns>A task that completes when the server accepts on every address.</returns>
    /// <exception cref="FormatException">An address is malformed.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">An address is in use or unusable.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            foreach (var address in addresses)
            {
                await Server.ListenAsync(address, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            ShutdownResult = await Server.ShutdownAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Shuts the server down: stops accepting, asks every session to disconnect, and waits up to
    /// <see cref="PipeProtocolServerOptions.ShutdownTimeout"/> for them (or until the host's shutdown
    /// timeout fires <paramref name="cancellationToken"/>), then aborts the rest.
    /// </summary>
    /// <param name="cancellationToken">The host gives up waiting: the remaining sessions are aborted at once.</param>
    /// <returns>A task that completes when every session has ended.</returns>
    public async Task StopAsync(CancellationToken cancellationToken)
        => ShutdownResult = await Server.ShutdownAsync(cancellationToken).ConfigureAwait(false);
}
