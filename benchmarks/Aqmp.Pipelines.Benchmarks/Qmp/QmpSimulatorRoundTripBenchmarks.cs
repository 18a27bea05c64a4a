using System.Net.Sockets;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Simulator;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.Qmp;

/// <summary>
/// <c>ExecuteAsync("query-status")</c> round trips from a <see cref="QmpClient"/> to the in-process
/// <see cref="QmpSimulator"/> over a Unix socket: one caller awaiting each reply before the next
/// command, and 64 concurrent callers (their commands pipelined on the one connection). Both do
/// <see cref="Operations"/> executes per invocation, so the times and allocations are per execute;
/// they include the simulator's side (same process). Every reply is checked.
/// </summary>
[MemoryDiagnoser]
[QmpShortJob]
public class QmpSimulatorRoundTripBenchmarks
{
    /// <summary>Executes per invocation, in both benchmarks.</summary>
    public const int Operations = 1024;

    private const int ConcurrentCallers = 64;

    private string? _socketPath;
    private QmpSimulator? _simulator;
    private QmpClient? _client;

    private QmpClient Client => _client ?? throw new InvalidOperationException("Not set up.");

    /// <summary>Starts the simulator on a fresh Unix socket and connects the client.</summary>
    /// <returns>A task that completes when the client is negotiated.</returns>
    [GlobalSetup]
    public async Task SetupAsync()
    {
        _socketPath = Path.Combine(Path.GetTempPath(), $"aqmp-bench-sim-{Guid.NewGuid():N}.sock");
        _simulator = new QmpSimulator();
        await _simulator.StartAsync(new UnixDomainSocketEndPoint(_socketPath)).ConfigureAwait(false);
        _client = new QmpClient();
        await _client.ConnectAsync("unix:" + _socketPath).ConfigureAwait(false);
        QmpVerify.Running(await _client.ExecuteAsync("query-status").ConfigureAwait(false));
    }

    /// <summary>Disconnects and stops the simulator.</summary>
    /// <returns>A task that completes when both are gone.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_client is { } client)
        {
            _client = null;
            await client.DisposeAsync().ConfigureAwait(false);
        }

        if (_simulator is { } simulator)
        {
            _simulator = null;
            await simulator.DisposeAsync().ConfigureAwait(false);
        }

        if (_socketPath is { } path)
        {
            File.Delete(path);
        }
    }

    /// <summary>One caller: each execute awaits its reply before the next is sent.</summary>
    /// <returns>The executes verified.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Operations)]
    public Task<int> OneCaller() => CallerAsync(Client, Operations);

    /// <summary>64 callers at once, each doing its share sequentially.</summary>
    /// <returns>The executes verified.</returns>
    [Benchmark(OperationsPerInvoke = Operations)]
    public async Task<int> SixtyFourCallers()
    {
        var client = Client;
        var callers = new Task<int>[ConcurrentCallers];
        for (var i = 0; i < callers.Length; i++)
        {
            callers[i] = CallerAsync(client, Operations / ConcurrentCallers);
        }

        var done = 0;
        foreach (var count in await Task.WhenAll(callers).ConfigureAwait(false))
        {
            done += count;
        }

        return done == Operations ? done : throw new InvalidOperationException($"{done} executes verified, expected {Operations}.");
    }

    private static async Task<int> CallerAsync(QmpClient client, int count)
    {
        for (var i = 0; i < count; i++)
        {
            QmpVerify.Running(await client.ExecuteAsync("query-status").ConfigureAwait(false));
        }

        return count;
    }
}
