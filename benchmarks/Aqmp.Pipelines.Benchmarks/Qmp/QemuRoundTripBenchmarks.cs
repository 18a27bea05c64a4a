using Aqmp.Pipelines.Qmp.Client;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.Qmp;

/// <summary>
/// <c>query-status</c> round trips against a real QEMU (<c>qemu-system-x86_64 -M none</c>, started
/// in the setup, killed in the cleanup): <see cref="QmpClient.ExecuteAsync"/> next to a raw
/// blocking socket doing the same request and response by hand (the baseline). One caller,
/// <see cref="Operations"/> round trips per invocation; every reply is checked. Left out of the run
/// when QEMU is not on PATH (<see cref="RequiresQemuConfig"/>).
/// </summary>
[MemoryDiagnoser]
[QmpShortJob]
[Config(typeof(RequiresQemuConfig))]
public class QemuRoundTripBenchmarks
{
    /// <summary>Round trips per invocation.</summary>
    public const int Operations = 256;

    private QemuProcess? _qemu;
    private RawQmpConnection? _raw;
    private QmpClient? _client;

    /// <summary>Starts QEMU and connects the raw socket (each benchmark runs in its own process, with its own QEMU).</summary>
    [GlobalSetup(Target = nameof(RawSocket))]
    public void SetupRawSocket()
    {
        _qemu = QemuProcess.Start();
        _raw = RawQmpConnection.Connect(_qemu.SocketPath);
        _raw.QueryStatus();
    }

    /// <summary>Starts QEMU and connects the client.</summary>
    /// <returns>A task that completes when the client is negotiated.</returns>
    [GlobalSetup(Target = nameof(QmpClientExecute))]
    public async Task SetupClientAsync()
    {
        _qemu = QemuProcess.Start();
        _client = new QmpClient();
        await _client.ConnectAsync("unix:" + _qemu.SocketPath).ConfigureAwait(false);
        QmpVerify.Running(await _client.ExecuteAsync("query-status").ConfigureAwait(false));
    }

    /// <summary>Disconnects and stops QEMU.</summary>
    /// <returns>A task that completes when QEMU is gone.</returns>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        try
        {
            _raw?.Dispose();
            _raw = null;
            if (_client is { } client)
            {
                _client = null;
                await client.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _qemu?.Dispose();
            _qemu = null;
        }
    }

    /// <summary>The hand-written baseline: blocking send, receive until CRLF, compare.</summary>
    /// <returns>The round trips verified.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = Operations)]
    public int RawSocket()
    {
        var raw = _raw ?? throw new InvalidOperationException("Not set up.");
        for (var i = 0; i < Operations; i++)
        {
            raw.QueryStatus();
        }

        return Operations;
    }

    /// <summary>The library: <c>await client.ExecuteAsync("query-status")</c>, one at a time.</summary>
    /// <returns>The round trips verified.</returns>
    [Benchmark(OperationsPerInvoke = Operations)]
    public async Task<int> QmpClientExecute()
    {
        var client = _client ?? throw new InvalidOperationException("Not set up.");
        for (var i = 0; i < Operations; i++)
        {
            QmpVerify.Running(await client.ExecuteAsync("query-status").ConfigureAwait(false));
        }

        return Operations;
    }
}
