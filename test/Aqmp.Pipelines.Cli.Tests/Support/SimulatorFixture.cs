using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Simulator;

namespace Aqmp.Pipelines.Cli.Tests.Support;

/// <summary>
/// An in-process <see cref="QmpSimulator"/> on a fresh Unix socket for the tool to talk to, with
/// two extra commands: <see cref="EchoCommand"/> returns (and records) its arguments, and
/// <see cref="FailCommand"/> answers with a <c>DeviceNotFound</c> error.
/// </summary>
internal sealed class SimulatorFixture : IAsyncDisposable
{
    public const string EchoCommand = "echo-arguments";
    public const string FailCommand = "fail-device";

    private SimulatorFixture(QmpSimulator simulator, string path)
    {
        Simulator = simulator;
        Path = path;
    }

    public QmpSimulator Simulator { get; }

    /// <summary>The socket's file path.</summary>
    public string Path { get; }

    /// <summary>The socket as an ADDRESS argument.</summary>
    public string Address => "unix:" + Path;

    /// <summary>The arguments <see cref="EchoCommand"/> received, in order, as raw JSON ("null" when there were none).</summary>
    public ConcurrentQueue<string> Echoed { get; } = new();

    public static async Task<SimulatorFixture> StartAsync()
    {
        var path = TempSocketPath("sim");
        var simulator = new QmpSimulator();
        var fixture = new SimulatorFixture(simulator, path);
        simulator.Handle(EchoCommand, (context, _) =>
        {
            fixture.Echoed.Enqueue(context.Arguments?.GetRawText() ?? "null");
            return ValueTask.FromResult(context.Arguments?.Clone());
        });
        simulator.Handle(FailCommand, (_, _) => throw new QmpCommandError("DeviceNotFound", "Device 'nosuch0' not found"));
        await simulator.StartAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        return fixture;
    }

    /// <summary>A fresh socket path in the temp directory.</summary>
    public static string TempSocketPath(string kind) => System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"aqmp-cli-{kind}-{Guid.NewGuid():N}.sock");

    /// <summary>
    /// Emits an event as soon as a client's session is open (retrying while no client is
    /// connected yet), so the tool is sure to receive it: the client keeps events that arrive
    /// during capability negotiation and delivers them once negotiated.
    /// </summary>
    public async Task EmitWhenConnectedAsync(string name, JsonElement? data = null)
    {
        var deadline = Stopwatch.StartNew();
        while (!await Simulator.EmitEventAsync(name, data).Bounded())
        {
            if (deadline.Elapsed > TestTimeouts.Default)
            {
                Assert.Fail($"No client connected to the simulator at {Address} within {TestTimeouts.Default} (sessions served: {Simulator.SessionsServed}).");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>Emits an event to the connected client; fails the test if there is none.</summary>
    public async Task EmitAsync(string name, JsonElement? data = null)
        => Assert.That(await Simulator.EmitEventAsync(name, data).Bounded(), Is.True, $"no client connected to emit {name} to");

    public async ValueTask DisposeAsync() => await Simulator.DisposeAsync();
}
