using System.Diagnostics.Metrics;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Session;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Hosting;

/// <summary>Adds a <see cref="PipeProtocolServer{TMessage}"/> to a generic host in one call.</summary>
public static class PipeProtocolServerServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="PipeProtocolServer{TMessage}"/> (a singleton, with the container's
    /// <see cref="ILoggerFactory"/>, and its <see cref="IMeterFactory"/> unless
    /// <paramref name="options"/> names one) and a <see cref="PipeProtocolServerHostedService{TMessage}"/>
    /// that listens on <paramref name="addresses"/> while the host runs and shuts the server down
    /// gracefully when it stops. One server per message type; for more, register
    /// <see cref="PipeProtocolServerHostedService{TMessage}"/> instances yourself.
    /// </summary>
    /// <typeparam name="TMessage">The protocol's message type.</typeparam>
    /// <param name="services">The host's services.</param>
    /// <param name="sessionFactory">Creates the session for each accepted connection, with the container at hand.</param>
    /// <param name="addresses">Where to listen (<c>unix:/path</c>, <c>host:port</c>, <c>[v6]:port</c>).</param>
    /// <param name="options">The server's limits and timeouts; the defaults when null.</param>
    /// <returns><paramref name="services"/>.</returns>
    /// <exception cref="ArgumentException">No address is given.</exception>
    public static IServiceCollection AddPipeProtocolServer<TMessage>(
        this IServiceCollection services,
        Func<IServiceProvider, ServerConnectionInfo, PipeProtocol<TMessage>> sessionFactory,
        IEnumerable<string> addresses,
        PipeProtocolServerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(sessionFactory);
        ArgumentNullException.ThrowIfNull(addresses);
        var listen = addresses.ToArray();
        if (listen.Length == 0)
        {
            throw new ArgumentException("At least one address to listen on is needed.", nameof(addresses));
        }

        services.AddSingleton(provider =>
        {
            var serverOptions = options ?? new PipeProtocolServerOptions();
            if (serverOptions.MeterFactory is null && provider.GetService<IMeterFactory>() is { } meters)
            {
                serverOptions = serverOptions with { MeterFactory = meters };
            }

            return new PipeProtocolServer<TMessage>(info => sessionFactory(provider, info), serverOptions, provider.GetService<ILoggerFactory>());
        });
        services.AddHostedService(provider => new PipeProtocolServerHostedService<TMessage>(provider.GetRequiredService<PipeProtocolServer<TMessage>>(), listen));
        return services;
    }
}
