using System.Diagnostics;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;

namespace Aqmp.Pipelines.Qmp.Tests.Simulator;

/// <summary>
/// When the simulator runs what a client sends, as QEMU's monitor schedules it: without
/// out-of-band one command at a time; with <c>oob</c> negotiated, in-band input queued (at most
/// eight deep, reading stops while the queue is full) and answered in order off the read loop,
/// while <c>exec-oob</c> runs at once and overtakes; and how long a client that never negotiates
/// may hold the monitor.
/// </summary>
public class QmpSimulatorSchedulingSpecs
{
    private const string NegotiateOutOfBand = """{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}""";

    /// <summary>How long a test waits to see that nothing arrives.</summary>
    private static readonly TimeSpan Silence = TimeSpan.FromMilliseconds(300);

    // ---------------------------------------------------------------- out-of-band

    [Test]
    public async Task With_oob_negotiated_an_exec_oob_command_overtakes_a_slow_in_band_one()
    {
        var slow = new TaskCompletionSource();
        await using var fixture = await StartWithSlowCommandAsync(slow);
        await using var peer = await NegotiatedAsync(fixture, NegotiateOutOfBand);

        await peer.SendRawAsync("""{"execute":"x-slow","id":1}{"exec-oob":"query-yank","id":2}""");

        Assert.That(IdOf(await peer.ReadAsync()), Is.EqualTo("2"), "the exec-oob reply comes first");
        slow.SetResult();
        AssertJson(await peer.ReadAsync(), """{"return":{},"id":1}""");
    }

    [Test]
    public async Task Without_oob_an_exec_oob_command_waits_its_turn_and_is_refused()
    {
        var slow = new TaskCompletionSource();
        await using var fixture = await StartWithSlowCommandAsync(slow);
        await using var peer = await NegotiatedAsync(fixture, """{"execute":"qmp_capabilities"}""");

        await peer.SendRawAsync("""{"execute":"x-slow","id":1}{"exec-oob":"query-yank","id":2}""");
        var first = peer.ReadAsync();

        Assert.That(await Task.WhenAny(first, Task.Delay(Silence)), Is.Not.SameAs(first), "nothing is answered while the in-band command runs");
        slow.SetResult();
        AssertJson(await first, """{"return":{},"id":1}""");
        AssertJson(await peer.ReadAsync(), """{"error":{"class":"GenericError","desc":"QMP input member 'exec-oob' is unexpected"},"id":2}""");
    }

    [Test]
    public async Task With_oob_in_band_commands_and_errors_for_malformed_input_are_answered_in_the_order_they_arrived()
    {
        var slow = new TaskCompletionSource();
        await using var fixture = await StartWithSlowCommandAsync(slow);
        await using var peer = await NegotiatedAsync(fixture, NegotiateOutOfBand);

        await peer.SendRawAsync("""{"execute":"x-slow","id":1}{"execute": }{"execute":"nope","id":3}{"execute":"query-status","id":4}{"exec-oob":"query-yank","id":5}""");

        Assert.That(IdOf(await peer.ReadAsync()), Is.EqualTo("5"), "the exec-oob reply comes first");
        slow.SetResult();
        AssertJson(await peer.ReadAsync(), """{"return":{},"id":1}""");
        AssertJson(await peer.ReadAsync(), """{"error":{"class":"GenericError","desc":"JSON parse error, expecting value"}}""");
        AssertJson(await peer.ReadAsync(), """{"error":{"class":"CommandNotFound","desc":"The command nope has not been found"},"id":3}""");
        AssertJson(await peer.ReadAsync(), """{"return":{"status":"running","singlestep":false,"running":true},"id":4}""");
    }

    [Test]
    public async Task With_oob_reading_stops_while_eight_in_band_requests_wait_so_an_exec_oob_behind_them_waits_too()
    {
        var slow = new TaskCompletionSource();
        await using var fixture = await StartWithSlowCommandAsync(slow);
        await using var peer = await NegotiatedAsync(fixture, NegotiateOutOfBand);

        await SendSlowThenQueuedThenOutOfBandAsync(fixture, peer, queued: QmpServerSession.InBandQueueLength);
        var first = peer.ReadAsync();

        Assert.That(await Task.WhenAny(first, Task.Delay(Silence)), Is.Not.SameAs(first), "the exec-oob command is not read while eight in-band requests wait");
        slow.SetResult();
        var ids = new List<string> { IdOf(await first) };
        for (var i = 0; i < QmpServerSession.InBandQueueLength + 1; i++)
        {
            ids.Add(IdOf(await peer.ReadAsync()));
        }

        Assert.That(ids[0], Is.EqualTo("0"), "the slow command is answered first");
        Assert.That(ids.Where(id => id != "\"oob\""), Is.EqualTo(Enumerable.Range(0, QmpServerSession.InBandQueueLength + 1).Select(id => id.ToString(System.Globalization.CultureInfo.InvariantCulture))), "in-band replies keep their order");
        Assert.That(ids, Does.Contain("\"oob\""), "the exec-oob command is answered once reading resumes");
    }

    [Test]
    public async Task With_oob_seven_waiting_in_band_requests_leave_reading_on_so_an_exec_oob_behind_them_overtakes()
    {
        var slow = new TaskCompletionSource();
        await using var fixture = await StartWithSlowCommandAsync(slow);
        await using var peer = await NegotiatedAsync(fixture, NegotiateOutOfBand);

        await SendSlowThenQueuedThenOutOfBandAsync(fixture, peer, queued: QmpServerSession.InBandQueueLength - 1);

        Assert.That(IdOf(await peer.ReadAsync()), Is.EqualTo("\"oob\""), "the exec-oob reply comes first");
        slow.SetResult();
        for (var id = 0; id < QmpServerSession.InBandQueueLength; id++)
        {
            Assert.That((await peer.ReadAsync()).GetProperty("id").GetInt32(), Is.EqualTo(id));
        }
    }

    [Test]
    public async Task With_oob_an_in_band_handlers_events_precede_its_reply()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("x-notify", async (context, token) =>
        {
            await context.EmitEventAsync("X_NOTIFIED", null, token);
            return null;
        });
        await using var peer = await NegotiatedAsync(fixture, NegotiateOutOfBand);

        await peer.SendAsync("""{"execute":"x-notify","id":1}""");

        Assert.That((await peer.ReadAsync()).GetProperty("event").GetString(), Is.EqualTo("X_NOTIFIED"));
        AssertJson(await peer.ReadAsync(), """{"return":{},"id":1}""");
    }

    [Test]
    public async Task With_oob_quit_is_answered_after_SHUTDOWN_and_the_connection_closes()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { StopOnQuit = false });
        await using var peer = await NegotiatedAsync(fixture, NegotiateOutOfBand);

        await peer.SendRawAsync("""{"execute":"quit","id":1}{"execute":"query-status","id":2}""");

        Assert.That((await peer.ReadAsync()).GetProperty("event").GetString(), Is.EqualTo("SHUTDOWN"));
        AssertJson(await peer.ReadAsync(), """{"return":{},"id":1}""");
        await peer.ClosesAsync();
        await using var next = await fixture.ConnectAsync();
        Assert.That((await next.ExecuteAsync("query-status").Bounded()).GetProperty("running").GetBoolean(), Is.True, "the next client is served");
    }

    [Test]
    public async Task Stopping_the_simulator_while_in_band_requests_wait_behind_a_handler_that_ignores_cancellation_ends_in_bounded_time()
    {
        var never = new TaskCompletionSource();
        await using var fixture = await StartWithSlowCommandAsync(never, ignoreCancellation: true);
        await using var peer = await NegotiatedAsync(fixture, NegotiateOutOfBand);
        await peer.SendRawAsync("""{"execute":"x-slow","id":0}""");
        await fixture.SlowStarted.Task.Bounded();
        await peer.SendRawAsync(string.Concat(Enumerable.Range(1, QmpServerSession.InBandQueueLength + 3).Select(id => $$"""{"execute":"query-status","id":{{id}}}""")));

        var clock = Stopwatch.StartNew();
        await fixture.Simulator.StopAsync().Bounded();

        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(8)), "the stop waits for the stuck handler only a bounded time");
        await peer.ClosesAsync();
        never.SetResult();
    }

    // ---------------------------------------------------------------- bounded clients

    [Test]
    public async Task A_client_that_does_not_negotiate_within_NegotiationTimeout_is_disconnected_and_the_next_client_is_served()
    {
        var limit = TimeSpan.FromMilliseconds(400);
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { NegotiationTimeout = limit });
        await using var idle = await RawQmpPeer.ConnectAsync(fixture.Path);
        var clock = Stopwatch.StartNew();
        await idle.ReadAsync();

        // A byte every 100 ms: a slow peer, never a whole command.
        using var trickle = new CancellationTokenSource();
        var trickling = TrickleAsync(idle, trickle.Token);
        await idle.ClosesAsync();
        var held = clock.Elapsed;
        await trickle.CancelAsync();
        await trickling;

        Assert.That(held, Is.GreaterThanOrEqualTo(limit - TimeSpan.FromMilliseconds(50)), "not before the timeout");
        await using var next = await fixture.ConnectAsync();
        Assert.That((await next.ExecuteAsync("query-status").Bounded()).GetProperty("running").GetBoolean(), Is.True, "the next client is served");
    }

    [Test]
    public async Task A_client_that_negotiated_keeps_the_simulator_past_NegotiationTimeout()
    {
        var limit = TimeSpan.FromMilliseconds(200);
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { NegotiationTimeout = limit });
        await using var first = await fixture.ConnectAsync();
        await using var second = new QmpClient(new QmpClientOptions { GreetingTimeout = TimeSpan.FromSeconds(30) });
        var connecting = second.ConnectAsync(fixture.Address);

        await Task.Delay(limit * 4);

        Assert.That((await first.ExecuteAsync("query-status").Bounded()).GetProperty("running").GetBoolean(), Is.True, "the first client still holds the simulator");
        Assert.That(connecting.IsCompleted, Is.False, "the second client still waits for its greeting");
        await first.DisconnectAsync().Bounded();
        await connecting.Bounded();
    }

    [Test]
    public async Task Ten_clients_that_never_negotiate_delay_a_well_behaved_one_by_at_most_their_timeouts()
    {
        var limit = TimeSpan.FromMilliseconds(150);
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { NegotiationTimeout = limit });
        var idle = new List<RawQmpPeer>();
        for (var i = 0; i < 10; i++)
        {
            idle.Add(await RawQmpPeer.ConnectAsync(fixture.Path));
        }

        try
        {
            await using var client = new QmpClient(new QmpClientOptions { GreetingTimeout = TimeSpan.FromSeconds(30) });
            var clock = Stopwatch.StartNew();
            await client.ConnectAsync(fixture.Address).WaitAsync(TimeSpan.FromSeconds(30));

            Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(limit * 10 - TimeSpan.FromMilliseconds(100)), "each idle client held the simulator for its timeout");
            Assert.That(fixture.Simulator.SessionsServed, Is.EqualTo(11));
            Assert.That((await client.ExecuteAsync("query-status").Bounded()).GetProperty("running").GetBoolean(), Is.True);
        }
        finally
        {
            foreach (var peer in idle)
            {
                await peer.DisposeAsync();
            }
        }
    }

    [TestCase(0)]
    [TestCase(-5)]
    public void A_NegotiationTimeout_that_is_not_positive_or_infinite_is_refused(int milliseconds)
        => Assert.Throws<ArgumentOutOfRangeException>(() => _ = new QmpSimulator(new QmpSimulatorOptions { NegotiationTimeout = TimeSpan.FromMilliseconds(milliseconds) }));

    [Test]
    public async Task An_infinite_NegotiationTimeout_lets_a_client_take_its_time_as_QEMU_does()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { NegotiationTimeout = Timeout.InfiniteTimeSpan });
        await using var peer = await RawQmpPeer.ConnectAsync(fixture.Path);
        await peer.ReadAsync();

        await Task.Delay(TimeSpan.FromSeconds(6));

        AssertJson(await peer.ExecuteAsync("qmp_capabilities", 1), """{"return":{},"id":1}""");
    }

    /// <summary>A simulator with <c>x-slow</c>, a command that answers <c>{}</c> once <paramref name="release"/> completes.</summary>
    private static async Task<SlowFixture> StartWithSlowCommandAsync(TaskCompletionSource release, bool ignoreCancellation = false)
    {
        var fixture = new SlowFixture(await SimulatorFixture.StartAsync());
        fixture.Simulator.Handle("x-slow", async (_, token) =>
        {
            fixture.SlowStarted.TrySetResult();
            await (ignoreCancellation ? release.Task : release.Task.WaitAsync(token));
            return null;
        });
        return fixture;
    }

    private static async Task<RawQmpPeer> NegotiatedAsync(SimulatorFixture fixture, string negotiation)
    {
        var peer = await RawQmpPeer.ConnectAsync(fixture.Path);
        await peer.ReadAsync();
        await peer.SendAsync(negotiation);
        AssertJson(await peer.ReadAsync(), """{"return":{}}""");
        return peer;
    }

    private static Task<RawQmpPeer> NegotiatedAsync(SlowFixture fixture, string negotiation) => NegotiatedAsync(fixture.Inner, negotiation);

    /// <summary>Sends <c>x-slow</c> (id 0) and waits until it runs, then <paramref name="queued"/> in-band commands (ids 1…) and one <c>exec-oob</c> (id "oob").</summary>
    private static async Task SendSlowThenQueuedThenOutOfBandAsync(SlowFixture fixture, RawQmpPeer peer, int queued)
    {
        await peer.SendRawAsync("""{"execute":"x-slow","id":0}""");
        await fixture.SlowStarted.Task.Bounded();
        await peer.SendRawAsync(string.Concat(Enumerable.Range(1, queued).Select(id => $$"""{"execute":"query-status","id":{{id}}}""")));
        await peer.SendRawAsync("""{"exec-oob":"query-yank","id":"oob"}""");
    }

    private static async Task TrickleAsync(RawQmpPeer peer, CancellationToken stop)
    {
        try
        {
            await peer.SendRawAsync("{");
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(100, stop);
                await peer.SendRawAsync(" ");
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // Stopped, or the simulator closed the connection.
        }
    }

    private static string IdOf(JsonElement reply) => reply.GetProperty("id").GetRawText();

    private static void AssertJson(JsonElement actual, string expected)
        => Assert.That(JsonElement.DeepEquals(actual, QmpJson.Parse(expected)), Is.True, () => $"expected {expected} but was {actual.GetRawText()}");

    /// <summary>A simulator fixture whose <c>x-slow</c> command reports when it starts.</summary>
    private sealed class SlowFixture(SimulatorFixture inner) : IAsyncDisposable
    {
        public SimulatorFixture Inner { get; } = inner;

        public QmpSimulator Simulator => Inner.Simulator;

        public TaskCompletionSource SlowStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ValueTask DisposeAsync() => Inner.DisposeAsync();
    }
}
