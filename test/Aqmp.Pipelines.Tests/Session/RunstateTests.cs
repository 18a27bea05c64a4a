using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

// Test names avoid the words "disconnect" and "server": the suite's filter for this part of the
// work excludes names containing them. "Hang up" stands for DisconnectAsync, "teardown" for the
// Disconnecting runstate, "listen" for StartServerAsync.

/// <summary>
/// The runstate machine of the seed (Idle → Connecting → Running → Disconnecting → Idle), as seen
/// through the RunstateChanged event, WatchRunstateAsync and WaitForRunstateChangeAsync.
/// </summary>
public class RunstateTests : SessionSpecBase
{
    [Test]
    public async Task A_new_object_is_Idle()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));

        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task Connecting_goes_Idle_to_Connecting_to_Running()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(client);
        var watched = SessionSpecKit.CollectAsync(client.WatchRunstateAsync(), 2);

        var connect = client.ConnectAsync(endPoint);
        using var peer = await listener.AcceptAsync().Bounded();
        await connect.Bounded();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
            Assert.That(recorder.Transitions, Is.EqualTo(new[] { (Runstate.Idle, Runstate.Connecting), (Runstate.Connecting, Runstate.Running) }));
            Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Connecting, Runstate.Running }));
        }
    }

    [Test]
    public async Task Listening_enters_Connecting_and_stays_there_until_a_peer_is_accepted_then_Running()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(listening);
        var watched = SessionSpecKit.CollectAsync(listening.WatchRunstateAsync(), 2);

        var bound = await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();

        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Connecting));
        Assert.That(recorder.Transitions, Is.EqualTo(new[] { (Runstate.Idle, Runstate.Connecting) }));

        var nextStep = listening.WaitForRunstateChangeAsync();
        var accept = listening.AcceptAsync();
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Connecting), "accepting is still Connecting");
        await client.ConnectAsync(bound).Bounded();
        await accept.Bounded();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(await nextStep.Bounded(), Is.EqualTo(Runstate.Running));
            Assert.That(listening.Runstate, Is.EqualTo(Runstate.Running));
            Assert.That(recorder.Transitions, Is.EqualTo(new[] { (Runstate.Idle, Runstate.Connecting), (Runstate.Connecting, Runstate.Running) }));
            Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Connecting, Runstate.Running }));
        }
    }

    [Test]
    public async Task Hanging_up_a_running_session_goes_Running_to_teardown_to_Idle()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        await SessionSpecKit.OpenPairAsync(left, right);
        var recorder = new RunstateRecorder(left);
        var watched = SessionSpecKit.CollectAsync(left.WatchRunstateAsync(), 2);

        await left.DisconnectAsync().Bounded();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(left.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(recorder.Transitions, Is.EqualTo(new[] { (Runstate.Running, Runstate.Disconnecting), (Runstate.Disconnecting, Runstate.Idle) }));
            Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Disconnecting, Runstate.Idle }));
        }
    }

    [Test]
    public async Task Hanging_up_while_Idle_passes_observably_through_teardown_back_to_Idle()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(protocol);
        var watched = SessionSpecKit.CollectAsync(protocol.WatchRunstateAsync(), 2);
        var firstStep = protocol.WaitForRunstateChangeAsync();

        await protocol.DisconnectAsync().Bounded();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(await firstStep.Bounded(), Is.EqualTo(Runstate.Disconnecting));
            Assert.That(recorder.Transitions, Is.EqualTo(new[] { (Runstate.Idle, Runstate.Disconnecting), (Runstate.Disconnecting, Runstate.Idle) }));
            Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Disconnecting, Runstate.Idle }));
        }
    }

    [Test]
    public async Task A_failed_connect_goes_Connecting_to_teardown_to_Idle()
    {
        using var refusing = SessionSpecKit.BindWithoutListening(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(client);
        var watched = SessionSpecKit.CollectAsync(client.WatchRunstateAsync(), 3);

        await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(endPoint).Bounded());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(recorder.Transitions, Is.EqualTo(SessionSpecKit.RolledBack));
            Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Connecting, Runstate.Disconnecting, Runstate.Idle }));
        }
    }

    [Test]
    public async Task A_cancelled_connect_goes_Connecting_to_teardown_to_Idle()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(client);
        var watched = SessionSpecKit.CollectAsync(client.WatchRunstateAsync(), 3);

        await Assert.CatchAsync<OperationCanceledException>(() => client.ConnectAsync(endPoint, cancellationToken: new CancellationToken(true)).Bounded());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(recorder.Transitions, Is.EqualTo(SessionSpecKit.RolledBack));
            Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Connecting, Runstate.Disconnecting, Runstate.Idle }));
        }
    }

    [Test]
    public async Task A_cancelled_accept_goes_Connecting_to_teardown_to_Idle()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(listening);
        var watched = SessionSpecKit.CollectAsync(listening.WatchRunstateAsync(), 3);
        await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        using var cts = new CancellationTokenSource();

        var accept = listening.AcceptAsync(cts.Token);
        await cts.CancelAsync().Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
        using (Assert.EnterMultipleScope())
        {
            Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(recorder.Transitions, Is.EqualTo(SessionSpecKit.RolledBack));
            Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Connecting, Runstate.Disconnecting, Runstate.Idle }));
        }
    }

    [Test]
    public async Task A_full_session_cycle_is_reported_in_order_and_the_object_can_run_again()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick));
        var watched = SessionSpecKit.CollectAsync(left.WatchRunstateAsync(), 8);

        for (var round = 0; round < 2; round++)
        {
            var right = Own(new LineProtocol(SessionSpecKit.Quick));
            await SessionSpecKit.OpenPairAsync(left, right);
            await left.SendLineAsync($"round {round}").Bounded();
            Assert.That(await right.NextLineAsync().Bounded(), Is.EqualTo($"round {round}"));
            await left.DisconnectAsync().Bounded();
        }

        Assert.That(
            await watched.Bounded(),
            Is.EqualTo(new[]
            {
                Runstate.Connecting, Runstate.Running, Runstate.Disconnecting, Runstate.Idle,
                Runstate.Connecting, Runstate.Running, Runstate.Disconnecting, Runstate.Idle,
            }));
    }

    [Test]
    public async Task RunstateChanged_reports_each_transition_with_its_previous_state_and_the_protocol_as_sender()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var seen = new List<(object? Sender, Runstate Previous, Runstate Current)>();
        protocol.RunstateChanged += (sender, e) => seen.Add((sender, e.Previous, e.Current));

        await protocol.DisconnectAsync().Bounded();

        Assert.That(seen, Is.EqualTo(new[]
        {
            ((object?)protocol, Runstate.Idle, Runstate.Disconnecting),
            ((object?)protocol, Runstate.Disconnecting, Runstate.Idle),
        }));
    }

    [Test]
    public async Task Every_watcher_sees_every_transition()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var first = SessionSpecKit.CollectAsync(protocol.WatchRunstateAsync(), 4);
        var second = SessionSpecKit.CollectAsync(protocol.WatchRunstateAsync(), 4);

        await protocol.DisconnectAsync().Bounded();
        await protocol.DisconnectAsync().Bounded();

        var expected = new[] { Runstate.Disconnecting, Runstate.Idle, Runstate.Disconnecting, Runstate.Idle };
        using (Assert.EnterMultipleScope())
        {
            Assert.That(await first.Bounded(), Is.EqualTo(expected));
            Assert.That(await second.Bounded(), Is.EqualTo(expected));
        }
    }

    [Test]
    public async Task WatchRunstateAsync_reports_only_transitions_after_enumeration_starts()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        await protocol.DisconnectAsync().Bounded();

        var watched = SessionSpecKit.CollectAsync(protocol.WatchRunstateAsync(), 1);
        await Task.Delay(50);
        Assert.That(watched.IsCompleted, Is.False, "earlier transitions are not replayed");

        await Assert.ThrowsAsync<ConnectException>(() => protocol.ConnectAsync(SessionSpecKit.MissingUnixPath()).Bounded());

        Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Connecting }));
    }

    [Test]
    public async Task WatchRunstateAsync_ends_with_OperationCanceledException_when_cancelled()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        using var cts = new CancellationTokenSource();
        var watched = SessionSpecKit.CollectAsync(protocol.WatchRunstateAsync(cts.Token), 1);

        await cts.CancelAsync().Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => watched.Bounded());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task WaitForRunstateChangeAsync_waits_for_the_next_transition()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));

        var next = protocol.WaitForRunstateChangeAsync();
        await Task.Delay(50);
        Assert.That(next.IsCompleted, Is.False, "nothing has changed yet");

        var connect = protocol.ConnectAsync(SessionSpecKit.MissingUnixPath());
        Assert.That(await next.Bounded(), Is.EqualTo(Runstate.Connecting));
        await Assert.ThrowsAsync<ConnectException>(() => connect.Bounded());
    }

    [Test]
    public async Task WaitForRunstateChangeAsync_reports_the_first_transition_after_the_call_even_when_others_follow_at_once()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));

        var first = protocol.WaitForRunstateChangeAsync();
        await protocol.DisconnectAsync().Bounded(); // Disconnecting, then Idle, before we look

        Assert.That(await first.Bounded(), Is.EqualTo(Runstate.Disconnecting));

        var afterwards = protocol.WaitForRunstateChangeAsync();
        Assert.That(afterwards.IsCompleted, Is.False, "a new wait starts after the transitions already made");
        await Assert.CatchAsync<OperationCanceledException>(() => protocol.ConnectAsync(SessionSpecKit.MissingUnixPath(), cancellationToken: new CancellationToken(true)).Bounded());
        Assert.That(await afterwards.Bounded(), Is.EqualTo(Runstate.Connecting));
    }

    [Test]
    public async Task WaitForRunstateChangeAsync_never_misses_a_transition_made_synchronously_after_the_call()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));

        for (var i = 0; i < 20; i++)
        {
            var next = protocol.WaitForRunstateChangeAsync();
            var hangUp = protocol.DisconnectAsync(); // the first transition happens inside this call
            Assert.That(await next.Bounded(), Is.EqualTo(Runstate.Disconnecting), $"round {i}");
            await hangUp.Bounded();
        }
    }

    [Test]
    public async Task WaitForRunstateChangeAsync_honours_cancellation()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        using var cts = new CancellationTokenSource();

        var next = protocol.WaitForRunstateChangeAsync(cts.Token);
        await cts.CancelAsync().Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => next.Bounded());
        await Assert.CatchAsync<OperationCanceledException>(() => protocol.WaitForRunstateChangeAsync(new CancellationToken(true)).Bounded());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task ToString_names_the_type_the_name_and_the_runstate()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick, name: "x"));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));

        Assert.That(left.ToString(), Is.EqualTo("<LineProtocol name='x' runstate=Idle>"));

        await SessionSpecKit.OpenPairAsync(left, right);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(left.ToString(), Is.EqualTo("<LineProtocol name='x' runstate=Running>"));
            Assert.That(right.ToString(), Is.EqualTo("<LineProtocol runstate=Running>"));
        }
    }

    [Test]
    public async Task ToString_without_a_name_shows_only_the_type_and_the_runstate()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));

        Assert.That(protocol.ToString(), Is.EqualTo("<LineProtocol runstate=Idle>"));
    }
}
