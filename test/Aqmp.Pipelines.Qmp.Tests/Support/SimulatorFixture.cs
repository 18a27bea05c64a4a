using System.Net.Sockets;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Simulator;

namespace Aqmp.Pipelines.Qmp.Tests.Support;

/// <summary>A simulator listening on a fresh Unix socket, and a client factory for it.</summary>
internal sealed class SimulatorFixture : IAsyncDisposable
{
    private SimulatorFixture(QmpSimulator simulator, string path)
    {
        Simulator = simulator;
        Path = path;
    }

    public QmpSimulator Simulator { get; }

    public string Path { get; }

    public string Address => "unix:" + Path;

    public static async Task<SimulatorFixture> StartAsync(QmpSimulatorOptions? options = null)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"aqmp-sim-{Guid.NewGuid():N}.sock");
        var simulator = new QmpSimulator(options);
        await simulator.StartAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        return new SimulatorFixture(simulator, path);
    }

    public async Task<QmpClient> ConnectAsync(QmpClientOptions? options = null)
    {
        var client = new QmpClient(options);
        await client.ConnectAsync(Address).Bounded();
        return client;
    }

    public async ValueTask DisposeAsync() => await Simulator.DisposeAsync();
}
