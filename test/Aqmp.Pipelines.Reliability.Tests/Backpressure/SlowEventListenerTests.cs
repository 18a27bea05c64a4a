using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Backpressure;

/// <summary>
/// Event listeners that never read, or read slowly, never hold up the client: while the
/// <see cref="QmpSimulator"/> emits 50,000 events over a Unix-domain socket, 500 executes all get
/// their replies, a listener that keeps up (the emitter keeps no more than half its capacity in
/// flight) gets every event in order, and the slow
/// listeners end as their <see cref="QmpEventOverflowPolicy"/> says: under
/// <see cref="QmpEventOverflowPolicy.EndListener"/> they yield what they buffered (the oldest
/// events, in order) and then raise <see cref="QmpEventOverflowException"/>; under
/// <see cref="QmpEventOverflowPolicy.DropOldest"/> they keep the newest events, count the dropped
/// ones exactly, and end normally after the disconnect.
/// </summary>
public sealed class SlowEventListenerTests
{
    private const int Events = 50_000;
    private const int Workers = 10;
    private const int ExecutesPerWorker = 50;
    private const string Tick = "TICK";

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [TestCase(QmpEventOverflowPolicy.EndListener)]
    [TestCase(QmpEventOverflowPolicy.DropOldest)]
    public async Task Listeners_that_never_read_or_read_slowly_delay_none_of_500_executes_during_50_000_events_and_end_by_their_overflow_policy(QmpEventOverflowPolicy policy)
    {
        await using var simulator = new QmpSimulator();
        var endPoint = await simulator.StartAsync(_socketFiles.NewEndPoint()).Bounded();
        await using var client = new QmpClient(new QmpClientOptions { EventOverflowPolicy = policy }, name: "client");
        await client.ConnectAsync(endPoint).Bounded();
        using var stalled = client.Listen(Tick);
        using var slow = client.Listen(Tick);
        using var everything = client.Listen(Tick);
        var capacity = stalled.Capacity;

        var received = 0;
        var readingEverything = Task.Run(async () =>
        {
            await foreach (var tick in everything.ReadAllAsync())
            {
                Assert.That(SequenceOf(tick), Is.EqualTo(received), "the reading listener gets every event, in order");
                if (Interlocked.Increment(ref received) == Events)
                {
                    return;
                }
            }
        });
        var readingSlowly = Task.Run(() => ReadSlowlyAsync(slow, client));
        var emitted = 0;
        var emitting = Task.Run(async () =>
        {
            for (var i = 0; i < Events; i++)
            {
                // The read loop never waits for a listener, so even a reading one drops behind if
                // events outrun it by its capacity: keep at most half of it in flight.
                while (i - Volatile.Read(ref received) >= capacity / 2)
                {
                    await Task.Delay(1);
                }

                Assert.That(await simulator.EmitEventAsync(Tick, Data(i)), Is.True, "the client is connected");
                Volatile.Write(ref emitted, i + 1);
            }
        });

        // The executes start once the stalled listener is full: from then on it can only overflow.
        await UntilAsync(() => Volatile.Read(ref received) > 2 * capacity, "the reading listener got twice the capacity");
        var completedDuringEvents = 0;
        var executing = Enumerable.Range(0, Workers).Select(_ => Task.Run(async () =>
        {
            for (var j = 0; j < ExecutesPerWorker; j++)
            {
                var status = await client.ExecuteAsync("query-status");
                Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("running"));
                if (Volatile.Read(ref emitted) < Events)
                {
                    Interlocked.Increment(ref completedDuringEvents);
                }
            }
        })).ToArray();

        await Task.WhenAll(executing).WaitAsync(TimeSpan.FromSeconds(30));
        await emitting.WaitAsync(TimeSpan.FromSeconds(30));
        await readingEverything.WaitAsync(TimeSpan.FromSeconds(30));
        TestContext.Progress.WriteLine($"{policy}: {Workers * ExecutesPerWorker} executes completed, {completedDuringEvents} of them while events were still being emitted; the reading listener got all {received:N0} events");
        Assert.That(received, Is.EqualTo(Events));

        await client.DisconnectAsync().Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        var (stalledEvents, stalledEnd) = await DrainAsync(stalled);
        var (slowEvents, slowEnd) = await readingSlowly.WaitAsync(TimeSpan.FromSeconds(30));
        TestContext.Progress.WriteLine($"{policy}: the stalled listener yielded {stalledEvents.Count:N0} events (dropped {stalled.DroppedCount:N0}) and ended with {stalledEnd?.GetType().Name ?? "nothing"}; the slow one read {slowEvents.Count:N0} (dropped {slow.DroppedCount:N0}) and ended with {slowEnd?.GetType().Name ?? "nothing"}");

        if (policy == QmpEventOverflowPolicy.EndListener)
        {
            Assert.That(stalledEvents, Is.EqualTo(Enumerable.Range(0, capacity)), "the stalled listener yields the first events it buffered, in order");
            Assert.That(stalledEnd, Is.TypeOf<QmpEventOverflowException>());
            Assert.That(((QmpEventOverflowException)stalledEnd!).Capacity, Is.EqualTo(capacity));
            Assert.That(slowEvents, Is.EqualTo(Enumerable.Range(0, slowEvents.Count)), "the slow listener yields a gapless beginning");
            Assert.That(slowEvents.Count, Is.GreaterThanOrEqualTo(capacity).And.LessThan(Events), "at least what it buffered, not everything");
            Assert.That(slowEnd, Is.TypeOf<QmpEventOverflowException>());
        }
        else
        {
            Assert.That(stalledEvents, Is.EqualTo(Enumerable.Range(Events - capacity, capacity)), "the stalled listener keeps the newest events");
            Assert.That(stalled.DroppedCount, Is.EqualTo(Events - capacity), "every other event is counted as dropped");
            Assert.That(stalledEnd, Is.Null, "a requested disconnect ends it normally");
            Assert.That(slowEvents, Is.Ordered.Ascending.And.Unique);
            Assert.That(slowEvents.Count + slow.DroppedCount, Is.EqualTo(Events), "the slow listener's events and drops add up to every event");
            Assert.That(slowEvents[^1], Is.EqualTo(Events - 1), "it ends with the newest event");
            Assert.That(slowEnd, Is.Null);
        }
    }

    private static JsonElement Data(int sequence) => QmpJson.Write(writer =>
    {
        writer.WriteStartObject();
        writer.WriteNumber("n", sequence);
        writer.WriteEndObject();
    });

    private static int SequenceOf(QmpEvent qmpEvent) => qmpEvent.Data!.Value.GetProperty("n").GetInt32();

    /// <summary>Reads one event per millisecond while the session runs (faster once it has ended), to the end of the enumeration.</summary>
    private static async Task<(List<int> Events, Exception? End)> ReadSlowlyAsync(QmpEventListener listener, QmpClient client)
    {
        var events = new List<int>();
        try
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await foreach (var tick in listener.ReadAllAsync(bound.Token))
            {
                events.Add(SequenceOf(tick));
                if (client.Runstate == Runstate.Running)
                {
                    await Task.Delay(1);
                }
            }

            return (events, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return (events, ex);
        }
    }

    private static async Task<(List<int> Events, Exception? End)> DrainAsync(QmpEventListener listener)
    {
        var events = new List<int>();
        try
        {
            using var bound = new CancellationTokenSource(TestTimeouts.Default);
            await foreach (var tick in listener.ReadAllAsync(bound.Token))
            {
                events.Add(SequenceOf(tick));
            }

            return (events, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return (events, ex);
        }
    }

    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Not reached within {TestTimeouts.Default}: {what}.");
            }

            await Task.Delay(2);
        }
    }
}
