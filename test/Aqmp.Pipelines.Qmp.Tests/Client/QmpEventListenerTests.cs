using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Qmp.Tests.Client;

/// <summary>
/// <see cref="QmpEventListener"/>s of a <see cref="QmpClient"/> fed by a <see cref="ScriptedQmpPeer"/>:
/// name filters, overflow policies, disposal, and listeners across sessions.
/// </summary>
public class QmpEventListenerTests
{
    private const int Capacity = 4;
    private const int EventCount = 10;

    private static readonly string[] AllTen = [.. Enumerable.Range(1, EventCount).Select(EventName)];

    [Test]
    public async Task Listen_without_names_accepts_every_event_and_with_names_only_those()
    {
        await using var peer = new ScriptedQmpPeer(new QmpClient(new QmpClientOptions { EventListenerCapacity = 7, EventOverflowPolicy = QmpEventOverflowPolicy.DropOldest }));

        using var any = peer.Client!.Listen();
        using var some = peer.Client.Listen("STOP", "RESUME");

        Assert.That(any.Names, Is.Null);
        Assert.That(any.Accepts("ANYTHING"), Is.True);
        Assert.That(some.Names, Is.EquivalentTo(new[] { "STOP", "RESUME" }));
        Assert.That(some.Accepts("STOP"), Is.True);
        Assert.That(some.Accepts("stop"), Is.False, "names are case-sensitive");
        Assert.That(some.Accepts("SHUTDOWN"), Is.False);
        Assert.That(any.Capacity, Is.EqualTo(7));
        Assert.That(any.Policy, Is.EqualTo(QmpEventOverflowPolicy.DropOldest));
        Assert.That(any.DroppedCount, Is.Zero);
    }

    [Test]
    public async Task Name_filters_give_each_listener_exactly_the_events_it_accepts_in_order()
    {
        await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
        var client = peer.Client!;
        using var stops = client.Listen("STOP");
        using var lifecycle = client.Listen("RESUME", "SHUTDOWN");
        using var everything = client.Listen();

        await peer.WriteLinesAsync(
            ScriptedQmpPeer.EventJson("STOP"),
            ScriptedQmpPeer.EventJson("RESUME"),
            ScriptedQmpPeer.EventJson("BLOCK_JOB_READY", """{"device":"drive0"}"""),
            ScriptedQmpPeer.EventJson("STOP"),
            ScriptedQmpPeer.EventJson("SHUTDOWN", """{"guest":true}""")).Bounded();
        // A reply after the events: once it is in, the read loop has dispatched every event before it
        // (a disconnect right away could stop the loop with events still unread in the pipe).
        var ping = client.ExecuteAsync("query-status");
        await peer.ReplyAsync(await peer.ReadCommandAsync("query-status")).Bounded();
        await ping.Bounded();
        await client.DisconnectAsync().Bounded();

        var stopsGot = await stops.DrainAsync().Bounded();
        var lifecycleGot = await lifecycle.DrainAsync().Bounded();
        var everythingGot = await everything.DrainAsync().Bounded();
        Assert.That(stopsGot.Events.Names(), Is.EqualTo(new[] { "STOP", "STOP" }));
        Assert.That(lifecycleGot.Events.Names(), Is.EqualTo(new[] { "RESUME", "SHUTDOWN" }));
        Assert.That(everythingGot.Events.Names(), Is.EqualTo(new[] { "STOP", "RESUME", "BLOCK_JOB_READY", "STOP", "SHUTDOWN" }));
        Assert.That(new[] { stopsGot.Error, lifecycleGot.Error, everythingGot.Error }, Is.All.Null, "a requested disconnect ends every listener normally");
        Assert.That(everythingGot.Events[2].Data!.Value.GetProperty("device").GetString(), Is.EqualTo("drive0"));
    }

    [Test]
    public async Task Under_EndListener_a_slow_listener_yields_the_first_4_then_raises_QmpEventOverflowException_while_others_get_all_events_and_replies_are_not_delayed()
    {
        await using var peer = await ScriptedQmpPeer.ConnectNewAsync(new QmpClientOptions { EventListenerCapacity = Capacity }).Bounded();
        var client = peer.Client!;
        using var slow = client.Listen();
        using var fast = client.Listen();
        var execute = client.ExecuteAsync("query-status");
        var command = await peer.ReadCommandAsync("query-status").Bounded();

        // The fast listener keeps up (reads each event before the next is sent); the slow one never reads.
        var fastGot = new List<string>();
        foreach (var name in AllTen)
        {
            await peer.SendEventAsync(name).Bounded();
            fastGot.Add((await fast.ReadAsync().Bounded()).Name);
        }

        await peer.ReplyAsync(command, """{"status":"running","singlestep":false,"running":true}""").Bounded();

        Assert.That((await execute.Bounded()).GetProperty("status").GetString(), Is.EqualTo("running"), "the reply was not held up by the slow listener");
        Assert.That(fastGot, Is.EqualTo(AllTen));
        var (slowGot, slowError) = await slow.DrainAsync().Bounded();
        Assert.That(slowGot.Names(), Is.EqualTo(AllTen.Take(Capacity)));
        Assert.That(slowError, Is.TypeOf<QmpEventOverflowException>());
        var overflow = (QmpEventOverflowException)slowError!;
        Assert.That(overflow.Capacity, Is.EqualTo(Capacity));
        Assert.That(overflow.EventName, Is.EqualTo(EventName(Capacity + 1)), "the first event that did not fit");

        await peer.SendEventAsync("AFTER").Bounded();
        Assert.That((await fast.ReadAsync().Bounded()).Name, Is.EqualTo("AFTER"), "the others go on");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running), "an overflow ends the listener, not the session");
    }

    [Test]
    public async Task A_slow_listener_never_delays_a_reply_that_follows_ten_events_in_the_same_read()
    {
        await using var peer = await ScriptedQmpPeer.ConnectNewAsync(new QmpClientOptions { EventListenerCapacity = Capacity }).Bounded();
        var client = peer.Client!;
        using var slow = client.Listen();
        var execute = client.ExecuteAsync("query-name");
        var command = await peer.ReadCommandAsync("query-name").Bounded();

        await peer.WriteLinesAsync([
            .. AllTen.Select(name => ScriptedQmpPeer.EventJson(name)),
            ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(command), """{"name":"vm0"}""")]).Bounded();

        Assert.That((await execute.Bounded()).GetProperty("name").GetString(), Is.EqualTo("vm0"));
        var (slowGot, slowError) = await slow.DrainAsync().Bounded();
        Assert.That(slowGot.Names(), Is.EqualTo(AllTen.Take(Capacity)));
        Assert.That(slowError, Is.TypeOf<QmpEventOverflowException>());
    }

    [Test]
    public async Task Under_DropOldest_a_slow_listener_keeps_the_newest_4_and_DroppedCount_is_6()
    {
        var options = new QmpClientOptions { EventListenerCapacity = Capacity, EventOverflowPolicy = QmpEventOverflowPolicy.DropOldest };
        await using var peer = await ScriptedQmpPeer.ConnectNewAsync(options).Bounded();
        var client = peer.Client!;
        using var slow = client.Listen();
        var execute = client.ExecuteAsync("query-name");
        var command = await peer.ReadCommandAsync("query-name").Bounded();

        await peer.WriteLinesAsync([
            .. AllTen.Select(name => ScriptedQmpPeer.EventJson(name)),
            ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(command))]).Bounded();
        await execute.Bounded(); // the read loop has delivered every event before routing this reply

        Assert.That(slow.DroppedCount, Is.EqualTo(EventCount - Capacity));
        var newest = await slow.ReadEventsAsync(Capacity).Bounded();
        Assert.That(newest.Names(), Is.EqualTo(AllTen.Skip(EventCount - Capacity)));

        await peer.SendEventAsync("LATER").Bounded();
        Assert.That((await slow.ReadAsync().Bounded()).Name, Is.EqualTo("LATER"), "the listener goes on after dropping");
        Assert.That(slow.DroppedCount, Is.EqualTo(EventCount - Capacity));
    }

    [Test]
    public async Task Dispose_stops_delivery_and_ends_the_enumeration_after_what_was_buffered()
    {
        await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
        var client = peer.Client!;
        var disposed = client.Listen();
        using var witness = client.Listen();

        await peer.WriteLinesAsync(ScriptedQmpPeer.EventJson("BEFORE_1"), ScriptedQmpPeer.EventJson("BEFORE_2")).Bounded();
        await witness.ReadEventsAsync(2).Bounded();
        disposed.Dispose();
        await peer.SendEventAsync("AFTER").Bounded();
        Assert.That((await witness.ReadAsync().Bounded()).Name, Is.EqualTo("AFTER"));

        var (events, error) = await disposed.DrainAsync().Bounded();
        Assert.That(events.Names(), Is.EqualTo(new[] { "BEFORE_1", "BEFORE_2" }));
        Assert.That(error, Is.Null);
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task Dispose_ends_an_enumeration_that_is_waiting_for_events()
    {
        await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
        var listener = peer.Client!.Listen();
        var draining = listener.DrainAsync();
        await Task.Delay(50).Bounded();
        Assert.That(draining.IsCompleted, Is.False);

        listener.Dispose();

        var (events, error) = await draining.Bounded();
        Assert.That(events, Is.Empty);
        Assert.That(error, Is.Null);
    }

    [Test]
    public async Task A_listener_created_after_the_session_ended_by_itself_gets_the_next_sessions_events()
    {
        var client = new QmpClient();
        await using var first = new ScriptedQmpPeer(client, ownsClient: false);
        await first.ConnectAsync().Bounded();
        using var old = client.Listen();
        await first.CloseAsync().Bounded();
        var (_, oldError) = await old.DrainAsync().Bounded(); // the session has ended
        Assert.That(oldError, Is.TypeOf<EndOfStreamException>());

        using var fresh = client.Listen();
        await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());
        await using var second = new ScriptedQmpPeer(client);
        await second.ConnectAsync().Bounded();
        await second.SendEventAsync("NEXT_SESSION").Bounded();

        Assert.That((await fresh.ReadAsync().Bounded()).Name, Is.EqualTo("NEXT_SESSION"));
    }

    [Test]
    public async Task A_listener_created_after_DisconnectAsync_gets_the_next_sessions_events_and_an_ended_one_gets_none()
    {
        var client = new QmpClient();
        await using var first = new ScriptedQmpPeer(client, ownsClient: false);
        await first.ConnectAsync().Bounded();
        using var old = client.Listen();
        await client.DisconnectAsync().Bounded();

        using var fresh = client.Listen();
        await using var second = new ScriptedQmpPeer(client);
        await second.ConnectAsync().Bounded();
        await second.SendEventAsync("NEXT_SESSION").Bounded();

        Assert.That((await fresh.ReadAsync().Bounded()).Name, Is.EqualTo("NEXT_SESSION"));
        var (oldEvents, oldError) = await old.DrainAsync().Bounded();
        Assert.That(oldEvents, Is.Empty, "a listener ends with its session");
        Assert.That(oldError, Is.Null);
    }

    private static string EventName(int i) => $"EVENT_{i}";
}
