using System.Diagnostics;
using System.Threading.Channels;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.HostileInput;

/// <summary>
/// A server that floods 100,000 events as fast as a Unix socket takes them while the client runs
/// 1,000 executes. Every execute gets its own reply; the read loop never waits for a listener: a
/// listener that does not keep up ends with <see cref="QmpEventOverflowException"/> after the
/// first <see cref="QmpClientOptions.EventListenerCapacity"/> events (the default policy), or keeps
/// the newest ones and counts the rest as dropped (<see cref="QmpEventOverflowPolicy.DropOldest"/>);
/// a client with no listener keeps no event at all. What the process retains stays bounded
/// throughout: the heap that survives a full collection, forced every few milliseconds during the
/// flood, grows by less than 8 MiB (measured: 2.0–2.8 MiB, with the receive buffer and two
/// listeners of 1024 events), where keeping the 100,000 events (about 15 MiB on the wire, several
/// times that parsed) would take well over 50 MiB; after the flood nothing is left (settled growth
/// under 2 MiB); and the process allocates less than 1 KiB per message (measured: 680–710 B, the
/// client's parse and the in-process peer's writes). None of this depends on when the collector
/// would have run by itself. GC figures are process-wide, so the fixture does not run in parallel.
/// </summary>
[NonParallelizable]
public sealed class EventFloodTests
{
    private const int Events = 100_000;
    private const int Executes = 1_000;
    private const long MiB = 1024 * 1024;
    private const long LiveBound = 8 * MiB;

    /// <summary>
    /// Bytes allocated per message of the flood (events and replies) by the whole process: the
    /// client's parse of each message, and the in-process peer that writes them. Measured: 680 B.
    /// </summary>
    private const double AllocationBoundPerMessage = 1024;

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [Test]
    public async Task With_no_listener_1000_executes_all_get_their_replies_during_a_flood_of_100k_events_and_no_event_is_kept()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        using var memory = HostileMemorySampler.Start();
        var peer = await listener.ConnectQmpAsync(client);

        var (flood, elapsed) = await FloodWhileExecutingAsync(client, peer);
        var settledGrowth = ProcessResources.SettledManagedBytes() - memory.Baseline;
        memory.Stop();

        Report(flood, elapsed, memory, $"settled growth after the flood {HostileMemorySampler.Mib(settledGrowth)}");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        Assert.That(settledGrowth, Is.LessThan(2 * MiB), "nothing of the 100,000 events is kept");
        Assert.That(memory.PeakLiveGrowth, Is.LessThan(LiveBound), "what is live during the flood stays bounded (keeping the 100,000 events would take over 50 MiB)");
        Assert.That(AllocatedPerMessage(memory, flood), Is.LessThan(AllocationBoundPerMessage), "what the process allocates per message received");
        await CloseAsync(client, flood);
    }

    [Test]
    public async Task Under_EndListener_a_stalled_listener_yields_the_first_1024_events_then_QmpEventOverflowException_while_1000_executes_get_their_replies_and_a_reading_listener_sees_a_gap_free_prefix()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        using var memory = HostileMemorySampler.Start();
        var peer = await listener.ConnectQmpAsync(client);
        using var stalled = client.Listen(HostileEventFlood.EventName);
        using var reading = client.Listen(HostileEventFlood.EventName);
        var reader = ReadConcurrentlyAsync(reading);

        var (flood, elapsed) = await FloodWhileExecutingAsync(client, peer);
        var (read, readError) = await reader.Bounded();
        var (buffered, stalledError) = await DrainAsync(stalled);
        memory.Stop();

        Report(flood, elapsed, memory, $"the reading listener got {read.Count:N0} events and ended with {readError?.GetType().Name ?? "nothing"}");
        Assert.That(buffered, Is.EqualTo(Enumerable.Range(0, 1024)), "the stalled listener yields the first 1024 events, in order");
        Assert.That(stalledError, Is.TypeOf<QmpEventOverflowException>());
        Assert.That(((QmpEventOverflowException)stalledError!).Capacity, Is.EqualTo(1024));
        Assert.That(read, Is.EqualTo(Enumerable.Range(0, read.Count)), "the reading listener sees every event up to where it stopped, in order, none skipped");
        Assert.That(read.Count == Events || readError is QmpEventOverflowException, Is.True, "it either kept up with all of them or ended with an overflow");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running), "an overflowing listener does not end the session");
        Assert.That(memory.PeakLiveGrowth, Is.LessThan(LiveBound));
        await CloseAsync(client, flood);
    }

    [Test]
    public async Task Under_DropOldest_a_stalled_listener_keeps_the_newest_1024_events_and_counts_the_rest_dropped_while_1000_executes_get_their_replies()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient(new QmpClientOptions { EventOverflowPolicy = QmpEventOverflowPolicy.DropOldest });
        using var memory = HostileMemorySampler.Start();
        var peer = await listener.ConnectQmpAsync(client);
        using var stalled = client.Listen(HostileEventFlood.EventName);
        using var reading = client.Listen(HostileEventFlood.EventName);
        var reader = ReadConcurrentlyAsync(reading);

        var (flood, elapsed) = await FloodWhileExecutingAsync(client, peer);
        var (read, readError) = await reader.Bounded();
        var kept = new List<int>();
        for (var i = 0; i < stalled.Capacity; i++)
        {
            kept.Add(Seq(await stalled.ReadAsync().Bounded()));
        }

        memory.Stop();

        Report(flood, elapsed, memory, $"the reading listener got {read.Count:N0} events and had {reading.DroppedCount:N0} dropped");
        Assert.That(kept, Is.EqualTo(Enumerable.Range(Events - 1024, 1024)), "the newest 1024 events, in order");
        Assert.That(stalled.DroppedCount, Is.EqualTo(Events - 1024));
        Assert.That(readError, Is.Null);
        Assert.That(read, Is.Ordered.Ascending.And.Unique, "what the reading listener gets is in order, without repeats");
        Assert.That(read[^1], Is.EqualTo(Events - 1), "and ends with the last event");
        Assert.That(read.Count + reading.DroppedCount, Is.EqualTo(Events), "every event is either delivered or counted as dropped");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        Assert.That(memory.PeakLiveGrowth, Is.LessThan(LiveBound));
        await CloseAsync(client, flood);
    }

    /// <summary>
    /// Starts the flood and 1,000 executes at once; checks every execute gets its own reply; then,
    /// once every event is on the wire, one more execute, whose reply follows all events: when it
    /// returns, the client has routed every event.
    /// </summary>
    private static async Task<(HostileEventFlood Flood, TimeSpan Elapsed)> FloodWhileExecutingAsync(QmpClient client, HostileConnection peer)
    {
        var clock = Stopwatch.StartNew();
        var flood = HostileEventFlood.Start(peer, Events);
        var executes = Enumerable.Range(0, Executes).Select(i => client.ExecuteAsync($"x-cmd-{i}")).ToArray();
        var replies = await Task.WhenAll(executes).WaitAsync(TestTimeouts.Default);
        Assert.That(replies.Select(reply => reply.ValueKind), Has.All.EqualTo(System.Text.Json.JsonValueKind.Object), "every execute got its reply");
        await flood.Flooded.Bounded();
        await client.ExecuteAsync("x-sync").Bounded();
        return (flood, clock.Elapsed);
    }

    /// <summary>Reads a listener as events come, until the last event of the flood or the listener ends.</summary>
    private static Task<(List<int> Seqs, Exception? Error)> ReadConcurrentlyAsync(QmpEventListener listener) => Task.Run(async () =>
    {
        var seqs = new List<int>(Events);
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        try
        {
            while (seqs.Count == 0 || seqs[^1] != Events - 1)
            {
                seqs.Add(Seq(await listener.ReadAsync(bound.Token)));
            }

            return (seqs, (Exception?)null);
        }
        catch (ChannelClosedException ex)
        {
            return (seqs, ex.InnerException);
        }
    });

    private static async Task<(List<int> Seqs, Exception? Error)> DrainAsync(QmpEventListener listener)
    {
        var seqs = new List<int>();
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        try
        {
            await foreach (var qmpEvent in listener.ReadAllAsync(bound.Token))
            {
                seqs.Add(Seq(qmpEvent));
            }

            return (seqs, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return (seqs, ex);
        }
    }

    private static int Seq(Qmp.Messages.QmpEvent qmpEvent) => qmpEvent.Data!.Value.GetProperty("seq").GetInt32();

    private static async Task CloseAsync(QmpClient client, HostileEventFlood flood)
    {
        await client.DisconnectAsync().Bounded();
        await flood.Completion.Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    private static double AllocatedPerMessage(HostileMemorySampler memory, HostileEventFlood flood) => (double)memory.Allocated / (Events + flood.Commands);

    private static void Report(HostileEventFlood flood, TimeSpan elapsed, HostileMemorySampler memory, string more)
        => TestContext.Progress.WriteLine(
            $"{TestContext.CurrentContext.Test.Name}:{Environment.NewLine}"
            + $"  {Events:N0} events and {flood.Commands:N0} replies ({HostileMemorySampler.Mib(flood.BytesSent)}) in {elapsed.TotalMilliseconds:F0} ms; {more}{Environment.NewLine}"
            + $"  {memory.Describe()}, {AllocatedPerMessage(memory, flood):F0} B allocated per message");
}
