using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Aqmp.Pipelines.Hosting;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Server;
using Aqmp.Pipelines.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Aqmp.Pipelines.Tests.Hosting;

/// <summary>
/// A <see cref="PipeProtocolServer{TMessage}"/> in a generic host, added in one call: the host's
/// start listens, its stop shuts the server down gracefully, and an address that cannot be bound
/// fails the host's start.
/// </summary>
public class HostedServerSpecs
{
    [Test]
    public async Task A_server_added_in_one_call_serves_while_the_host_runs_and_drains_its_sessions_when_the_host_stops()
    {
        var path = Path.Combine(Path.GetTempPath(), $"aqmp-host-{Guid.NewGuid():N}.sock");
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPipeProtocolServer((_, info) => ServerSpecKit.Echo(info), ["unix:" + path]);
        using var host = builder.Build();

        await host.StartAsync().Bounded();
        using var client = await ServerSpecKit.ConnectAsync(new UnixDomainSocketEndPoint(path));
        Assert.That(await ServerSpecKit.EchoAsync(client, "through the host"), Is.EqualTo("through the host"));
        var server = host.Services.GetRequiredService<PipeProtocolServer<string>>();
        Assert.That(server.ActiveSessions, Is.EqualTo(1));

        await host.StopAsync().Bounded();

        var hosted = host.Services.GetServices<IHostedService>().OfType<PipeProtocolServerHostedService<string>>().Single();
        Assert.That(hosted.ShutdownResult, Is.Not.Null);
        Assert.That(hosted.ShutdownResult!.Drained, Is.EqualTo(1), "the session was asked to disconnect and did");
        Assert.That(await ServerSpecKit.ClosedByPeerAsync(client), Is.True);
        Assert.That(File.Exists(path), Is.False, "the socket file is removed");
    }

    [Test]
    public async Task The_server_publishes_its_metrics_through_the_hosts_meter_factory()
    {
        var path = Path.Combine(Path.GetTempPath(), $"aqmp-host-{Guid.NewGuid():N}.sock");
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPipeProtocolServer((_, info) => ServerSpecKit.Echo(info), ["unix:" + path]);
        using var host = builder.Build();
        var factory = host.Services.GetRequiredService<IMeterFactory>();
        long started = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Scope == factory && instrument.Name == "aqmp.server.started_sessions")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref started, value));
        listener.Start();

        await host.StartAsync().Bounded();
        using (var client = await ServerSpecKit.ConnectAsync(new UnixDomainSocketEndPoint(path)))
        {
            await ServerSpecKit.EchoAsync(client, "counted");
        }

        await host.StopAsync().Bounded();
        Assert.That(Interlocked.Read(ref started), Is.EqualTo(1), "the meter was made by the host's factory");
    }

    [Test]
    public async Task An_address_that_cannot_be_bound_fails_the_hosts_start_and_closes_the_addresses_bound_before_it()
    {
        var path = Path.Combine(Path.GetTempPath(), $"aqmp-host-{Guid.NewGuid():N}.sock");
        await File.WriteAllTextAsync(path, "not a socket");
        var first = Path.Combine(Path.GetTempPath(), $"aqmp-host-{Guid.NewGuid():N}.sock");
        try
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Services.AddPipeProtocolServer((_, info) => ServerSpecKit.Echo(info), ["unix:" + first, "unix:" + path]);
            using var host = builder.Build();

            Assert.That(async () => await host.StartAsync().Bounded(), Throws.InstanceOf<SocketException>());
            Assert.That(File.Exists(first), Is.False, "the first address was closed again");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void No_address_is_refused_when_the_server_is_added()
    {
        var services = new ServiceCollection();

        Assert.That(() => services.AddPipeProtocolServer((_, info) => ServerSpecKit.Echo(info), []), Throws.ArgumentException);
    }
}
