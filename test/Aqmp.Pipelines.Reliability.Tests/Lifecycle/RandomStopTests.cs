using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Lifecycle;

/// <summary>
/// Where races hide: a client connects and then exchanges messages in a loop while, after a random
/// 0–2 ms, the test stops it — <c>DisconnectAsync</c>, <c>DisposeAsync</c>, or cancelling the
/// connect's token (then disconnecting) — so the stop lands anywhere: before the socket connects,
/// during the handshake or negotiation, between sends, with replies in flight. A thousand
/// times, seeded (replay with <c>AQMP_FUZZ_SEED</c>): the stop itself raises nothing, the client's
/// work fails only with the documented errors, the object always ends <see cref="Runstate.Idle"/>,
/// and the descriptors return to their baseline.
/// </summary>
[NonParallelizable] // counts process-wide descriptors
public sealed class RandomStopTests : LifecycleFixture
{
    private const int Iterations = 1000;
    private const int WarmUpIterations = 5;
    private const double MaximumDelayMilliseconds = 2.0;

    private enum Stop
    {
        DisconnectAsync,
        DisposeAsync,
        CancelConnectThenDisconnect,
    }

    [Test]
    public async Task A_line_protocol_client_stopped_at_a_random_moment_of_connect_or_traffic_always_ends_Idle_and_leaks_nothing()
    {
        var random = FuzzSeed.Next(out var seed);
        await using var server = LifecycleEchoServer.Start(SocketFiles);
        var outcomes = new ConcurrentDictionary<string, int>();

        async Task IterationAsync(int iteration)
        {
            var client = new LineProtocol(name: "random");
            var stop = (Stop)random.Next(3);
            var delay = LifecycleResources.RandomDelay(random, MaximumDelayMilliseconds);
            await RunIterationAsync(
                client,
                async token =>
                {
                    await client.ConnectAsync(server.EndPoint, cancellationToken: token);
                    for (var i = 0; ; i++)
                    {
                        var line = $"{iteration}:{i}";
                        await client.SendLineAsync(line);
                        Assert.That(await client.Received.ReadAsync(token), Is.EqualTo(line), FuzzSeed.Replay(seed));
                    }
                },
                stop,
                delay,
                outcomes,
                seed,
                iteration);
        }

        await RunAsync("line protocol", IterationAsync, outcomes, () => server.UntilIdleAsync());
        Assert.That(server.Errors, Is.Empty, FuzzSeed.Replay(seed));
    }

    [Test]
    public async Task A_QmpClient_stopped_at_a_random_moment_of_connect_negotiation_or_executes_always_ends_Idle_and_leaks_nothing()
    {
        var random = FuzzSeed.Next(out var seed);
        var path = SocketFiles.NewPath();
        await using var simulator = await CycleTests.StartEchoSimulatorAsync(path);
        var outcomes = new ConcurrentDictionary<string, int>();

        async Task IterationAsync(int iteration)
        {
            var client = new QmpClient(name: "random");
            var stop = (Stop)random.Next(3);
            var delay = LifecycleResources.RandomDelay(random, MaximumDelayMilliseconds);
            await RunIterationAsync(
                client,
                async token =>
                {
                    await client.ConnectAsync("unix:" + path, cancellationToken: token);
                    for (var i = 0; ; i++)
                    {
                        // Two executes in flight at a time.
                        var first = client.ExecuteAsync("echo", CycleTests.EchoArguments(2 * i));
                        var second = client.ExecuteAsync("echo", CycleTests.EchoArguments((2 * i) + 1));
                        var replies = await Task.WhenAll(first, second);
                        Assert.That(replies.Select(r => r.GetProperty("seq").GetInt32()), Is.EqualTo(new[] { 2 * i, (2 * i) + 1 }), FuzzSeed.Replay(seed));
                    }
                },
                stop,
                delay,
                outcomes,
                seed,
                iteration);
        }

        await RunAsync("QmpClient", IterationAsync, outcomes, () => Task.CompletedTask);
    }

    private static async Task RunAsync(string what, Func<int, Task> iteration, ConcurrentDictionary<string, int> outcomes, Func<Task> untilServerIdle)
    {
        for (var i = 0; i < WarmUpIterations; i++)
        {
            await iteration(-1 - i);
        }

        await untilServerIdle();
        outcomes.Clear();
        var before = LifecycleResources.Take();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Iterations; i++)
        {
            await iteration(i);
        }

        clock.Stop();
        await untilServerIdle();
        var after = await LifecycleResources.SettleAsync(before);
        LifecycleResources.Report($"{what} stopped at random moments", Iterations, before, after, clock.Elapsed);
        TestContext.Progress.WriteLine($"{what} outcomes: {string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}"))}");
        LifecycleResources.AssertDescriptorsReturned(before, after);
        Assert.That(after.PendingWorkItems, Is.LessThanOrEqualTo(2), "no work left queued");
    }

    /// <summary>
    /// Starts <paramref name="work"/> (connect, then traffic until it fails) on the thread pool,
    /// stops the client after <paramref name="delay"/>, and checks how both ended.
    /// </summary>
    private static async Task RunIterationAsync<TMessage>(
        PipeProtocol<TMessage> client,
        Func<CancellationToken, Task> work,
        Stop stop,
        TimeSpan delay,
        ConcurrentDictionary<string, int> outcomes,
        int seed,
        int iteration)
    {
        var context = $"iteration {iteration}, {stop} after {delay.TotalMilliseconds:F3} ms; {FuzzSeed.Replay(seed)}";
        using var connectToken = new CancellationTokenSource();
        using var trafficStop = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(connectToken.Token, trafficStop.Token);
        var running = Task.Run(() => work(linked.Token));
        LifecycleResources.SpinFor(delay);

        var stopCall = stop switch
        {
            Stop.DisconnectAsync => client.DisconnectAsync(),
            Stop.DisposeAsync => client.DisposeAsync().AsTask(),
            _ => CancelThenDisconnectAsync(client, connectToken),
        };
        var stopError = await CaptureAsync(stopCall.WaitAsync(TestTimeouts.Default));

        // The traffic waits for a reply that may never come once the session is gone.
        await trafficStop.CancelAsync();
        var workError = await CaptureAsync(running.WaitAsync(TestTimeouts.Default));
        if (stop != Stop.DisposeAsync)
        {
            await client.DisposeAsync().AsTask().WaitAsync(TestTimeouts.Default);
        }

        var outcome = Classify(workError);
        outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);
        // Exceptions are described only on failure: formatting a stack trace loads symbol files,
        // which would open descriptors of its own in the middle of the count.
        if (stopError is not null)
        {
            Assert.Fail($"{context}: the stop raised {stopError}");
        }

        if (outcome.StartsWith("unexpected", StringComparison.Ordinal))
        {
            Assert.Fail($"{context}: the work failed with an undocumented error ({outcome}): {workError}");
        }

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), context);
    }

    private static async Task CancelThenDisconnectAsync<TMessage>(PipeProtocol<TMessage> client, CancellationTokenSource connectToken)
    {
        await connectToken.CancelAsync();
        await client.DisconnectAsync();
    }

    private static async Task<Exception?> CaptureAsync(Task task)
    {
        try
        {
            await task;
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    /// <summary>Names how the work ended; "unexpected" for anything the documentation does not promise.</summary>
    private static string Classify(Exception? error) => error switch
    {
        // The connect (or the wait for a reply) was cancelled: by the stop, or by the test afterwards.
        OperationCanceledException => "cancelled",

        // A send or execute made once the session was ending, or after it ended.
        StateException => "state",
        ObjectDisposedException => "disposed",

        // An execute whose reply was pending when the session ended.
        QmpExecuteInterruptedException => "interrupted",

        // The simulator serves one client at a time; clients stopped right after their socket
        // connected queue up in its listen backlog (16), and when the simulator falls behind by
        // that many the kernel refuses the next Unix-socket connect with EAGAIN: a documented
        // connection failure, seen about once in a few thousand iterations on a busy machine.
        ConnectException { ErrorMessage: ConnectException.ConnectionPhase, InnerException: SocketException { SocketErrorCode: SocketError.WouldBlock } } => "connect refused, backlog full",
        null => "unexpected: the endless traffic loop returned",
        TimeoutException => "unexpected: hang",
        _ => $"unexpected: {error.GetType().Name}",
    };
}
