using System.IO.Pipelines;
using System.Net.Sockets;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// The seed's <c>require()</c>: every guarded call made in the wrong runstate raises
/// StateException, naming the actual and the required runstate, with the seed's message for the
/// actual one, and changes nothing.
/// </summary>
public class StateGuardTests : SessionSpecBase
{
    private const string IdleMessage = "LineProtocol is disconnected and idle.";
    private const string ConnectingMessage = "LineProtocol is currently connecting.";
    private const string RunningMessage = "LineProtocol is already connected and running.";
    private const string TeardownMessage = "LineProtocol is disconnecting. Call DisconnectAsync() to return to Idle state.";

    /// <summary>The calls that require Idle: they start a session.</summary>
    private static readonly (string Name, Func<LineProtocol, Task> Call)[] StartCalls =
    [
        ("ConnectAsync(EndPoint)", p => p.ConnectAsync(SessionSpecKit.Loopback0)),
        ("ConnectAsync(string)", p => p.ConnectAsync("127.0.0.1:1")),
        ("StartServerAsync", p => p.StartServerAsync(SessionSpecKit.Loopback0)),
        ("StartServerAndAcceptAsync", p => p.StartServerAndAcceptAsync(SessionSpecKit.Loopback0)),
        ("OpenAsync(IDuplexPipe)", p => p.OpenAsync(SessionSpecKit.CrossedPipes().Left)),
        ("OpenAsync(Stream)", p => p.OpenAsync(new MemoryStream())),
    ];

    [Test]
    public async Task Starting_calls_while_Running_raise_StateException_already_connected_and_running()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        await SessionSpecKit.OpenPairAsync(left, right);

        await AssertEachStartCallIsRefusedAsync(left, Runstate.Running, RunningMessage);
        await AssertSocketOpenIsRefusedAsync(left, Runstate.Running, RunningMessage);

        // The refused calls disturbed nothing: the session still works.
        await left.SendLineAsync("still here").Bounded();
        Assert.That(await right.NextLineAsync().Bounded(), Is.EqualTo("still here"));
    }

    [Test]
    public async Task Starting_calls_while_listening_raise_StateException_currently_connecting()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var bound = await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();

        await AssertEachStartCallIsRefusedAsync(listening, Runstate.Connecting, ConnectingMessage);
        await AssertSocketOpenIsRefusedAsync(listening, Runstate.Connecting, ConnectingMessage);

        // The listener survived the refused calls: a peer can still be accepted.
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var accept = listening.AcceptAsync();
        await client.ConnectAsync(bound).Bounded();
        await accept.Bounded();
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task Starting_calls_during_a_pending_handshake_raise_StateException_currently_connecting()
    {
        var (mine, _) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var handshakeStarted = SessionSpecKit.StallHandshake(protocol); // the peer never answers
        var open = protocol.OpenAsync(mine);
        await handshakeStarted.Bounded();

        await AssertEachStartCallIsRefusedAsync(protocol, Runstate.Connecting, ConnectingMessage);

        await protocol.DisconnectAsync().Bounded();
        await Assert.CatchAsync<OperationCanceledException>(() => open.Bounded());
    }

    [Test]
    public async Task A_session_ended_by_the_peer_stays_in_teardown_until_hung_up()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        await protocol.OpenAsync(mine).Bounded();
        var next = protocol.WaitForRunstateChangeAsync();

        await peer.Output.CompleteAsync().Bounded();

        Assert.That(await next.Bounded(), Is.EqualTo(Runstate.Disconnecting));
        await SessionSpecKit.WaitUntilAsync(() => protocol.SessionEnded.Ran, "the session's teardown has finished");
        await Task.Delay(50);
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Disconnecting), "it does not return to Idle by itself");

        await Assert.ThrowsAsync<EndOfStreamException>(() => protocol.DisconnectAsync().Bounded());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task Starting_calls_in_teardown_after_the_peer_closed_raise_StateException_saying_how_to_return_to_Idle()
    {
        var protocol = await InTeardownAfterThePeerClosedAsync();

        await AssertEachStartCallIsRefusedAsync(protocol, Runstate.Disconnecting, TeardownMessage);
        await AssertSocketOpenIsRefusedAsync(protocol, Runstate.Disconnecting, TeardownMessage);

        var accept = await Assert.ThrowsAsync<StateException>(() => protocol.AcceptAsync().Bounded());
        AssertStateError(accept, Runstate.Disconnecting, Runstate.Connecting, TeardownMessage);

        var send = await Assert.ThrowsAsync<StateException>(() => protocol.SendLineAsync("late").Bounded());
        AssertStateError(send, Runstate.Disconnecting, Runstate.Running, TeardownMessage);

        await Assert.ThrowsAsync<EndOfStreamException>(() => protocol.DisconnectAsync().Bounded());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task AcceptAsync_while_Idle_raises_StateException_saying_it_is_idle()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(protocol);

        var error = await Assert.ThrowsAsync<StateException>(() => protocol.AcceptAsync().Bounded());

        AssertStateError(error, Runstate.Idle, Runstate.Connecting, IdleMessage);
        Assert.That(recorder.Transitions, Is.Empty);
    }

    [Test]
    public async Task AcceptAsync_while_Running_raises_StateException_already_connected_and_running()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        await SessionSpecKit.OpenPairAsync(left, right);

        var error = await Assert.ThrowsAsync<StateException>(() => left.AcceptAsync().Bounded());

        AssertStateError(error, Runstate.Running, Runstate.Connecting, RunningMessage);
        Assert.That(left.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task AcceptAsync_after_a_previous_listen_ended_raises_StateException()
    {
        // Listening, then hanging up, leaves no listener: AcceptAsync needs a new StartServerAsync.
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        await protocol.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        await protocol.DisconnectAsync().Bounded();

        var error = await Assert.ThrowsAsync<StateException>(() => protocol.AcceptAsync().Bounded());

        AssertStateError(error, Runstate.Idle, Runstate.Connecting, IdleMessage);
    }

    [Test]
    public async Task AcceptAsync_while_connecting_without_a_listener_raises_StateException_currently_connecting()
    {
        var (mine, _) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var handshakeStarted = SessionSpecKit.StallHandshake(protocol);
        var open = protocol.OpenAsync(mine);
        await handshakeStarted.Bounded();

        var error = await Assert.ThrowsAsync<StateException>(() => protocol.AcceptAsync().Bounded());

        AssertStateError(error, Runstate.Connecting, Runstate.Connecting, ConnectingMessage);
        Assert.That(open.IsCompleted, Is.False, "the pending attempt is undisturbed");
        await protocol.DisconnectAsync().Bounded();
        await Assert.CatchAsync<OperationCanceledException>(() => open.Bounded());
    }

    [Test]
    public async Task A_second_AcceptAsync_while_one_is_pending_raises_StateException_currently_connecting()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var bound = await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        var first = listening.AcceptAsync();

        var error = await Assert.ThrowsAsync<StateException>(() => listening.AcceptAsync().Bounded());

        AssertStateError(error, Runstate.Connecting, Runstate.Connecting, ConnectingMessage);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        await client.ConnectAsync(bound).Bounded();
        await first.Bounded();
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Running), "the first AcceptAsync still completes");
    }

    [Test]
    public async Task SendAsync_while_Idle_raises_StateException_saying_it_is_idle()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));

        var error = await Assert.ThrowsAsync<StateException>(() => protocol.SendLineAsync("hello").Bounded());

        AssertStateError(error, Runstate.Idle, Runstate.Running, IdleMessage);
    }

    [Test]
    public async Task SendAsync_while_listening_raises_StateException_currently_connecting()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();

        var error = await Assert.ThrowsAsync<StateException>(() => listening.SendLineAsync("hello").Bounded());

        AssertStateError(error, Runstate.Connecting, Runstate.Running, ConnectingMessage);
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Connecting));
    }

    [Test]
    public async Task SendAsync_while_accepting_raises_StateException_currently_connecting()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        var accept = listening.AcceptAsync();

        var error = await Assert.ThrowsAsync<StateException>(() => listening.SendLineAsync("hello").Bounded());

        AssertStateError(error, Runstate.Connecting, Runstate.Running, ConnectingMessage);
        await listening.DisconnectAsync().Bounded();
        await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
    }

    [Test]
    public async Task SendAsync_in_teardown_raises_StateException_saying_how_to_return_to_Idle()
    {
        var protocol = await InTeardownAfterThePeerClosedAsync();

        var error = await Assert.ThrowsAsync<StateException>(() => protocol.SendLineAsync("hello").Bounded());

        AssertStateError(error, Runstate.Disconnecting, Runstate.Running, TeardownMessage);
    }

    [Test]
    public async Task A_refused_call_makes_no_transition()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        await SessionSpecKit.OpenPairAsync(left, right);
        var recorder = new RunstateRecorder(left);
        var next = left.WaitForRunstateChangeAsync();

        await Assert.ThrowsAsync<StateException>(() => left.ConnectAsync(SessionSpecKit.Loopback0).Bounded());
        await Assert.ThrowsAsync<StateException>(() => left.AcceptAsync().Bounded());

        await Task.Delay(20);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(recorder.Transitions, Is.Empty);
            Assert.That(next.IsCompleted, Is.False);
            Assert.That(left.Runstate, Is.EqualTo(Runstate.Running));
        }
    }

    [Test]
    public async Task After_DisposeAsync_guarded_calls_raise_ObjectDisposedException()
    {
        var protocol = new LineProtocol(SessionSpecKit.Quick);
        await protocol.DisposeAsync().Bounded();

        foreach (var (name, call) in StartCalls)
        {
            await Assert.ThrowsAsync<ObjectDisposedException>(() => call(protocol).Bounded(), name);
        }

        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        using var connected = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await connected.ConnectAsync(endPoint).Bounded();
        using (Assert.EnterMultipleScope())
        {
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.OpenAsync(connected).Bounded());
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.AcceptAsync().Bounded());
            await Assert.ThrowsAsync<ObjectDisposedException>(() => protocol.SendLineAsync("hello").Bounded());
            Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        }
    }

    [Test]
    public async Task DisposeAsync_of_a_running_session_returns_to_Idle_and_later_calls_raise_ObjectDisposedException()
    {
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        var left = new LineProtocol(SessionSpecKit.Quick);
        await SessionSpecKit.OpenPairAsync(left, right);

        await left.DisposeAsync().Bounded();
        await left.DisposeAsync().Bounded(); // safe more than once

        using (Assert.EnterMultipleScope())
        {
            Assert.That(left.Runstate, Is.EqualTo(Runstate.Idle));
            await Assert.ThrowsAsync<ObjectDisposedException>(() => left.SendLineAsync("hello").Bounded());
            await Assert.ThrowsAsync<ObjectDisposedException>(() => left.OpenAsync(SessionSpecKit.CrossedPipes().Left).Bounded());
        }
    }

    /// <summary>A protocol on crossed pipes whose peer has closed: its session waits in teardown.</summary>
    private async Task<LineProtocol> InTeardownAfterThePeerClosedAsync()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        await protocol.OpenAsync(mine).Bounded();
        var next = protocol.WaitForRunstateChangeAsync();
        await peer.Output.CompleteAsync().Bounded();
        Assert.That(await next.Bounded(), Is.EqualTo(Runstate.Disconnecting));
        return protocol;
    }

    private static async Task AssertEachStartCallIsRefusedAsync(LineProtocol protocol, Runstate state, string message)
    {
        var before = protocol.Runstate;
        foreach (var (name, call) in StartCalls)
        {
            var error = await Assert.ThrowsAsync<StateException>(() => call(protocol).Bounded(), name);
            AssertStateError(error, state, Runstate.Idle, message, name);
            Assert.That(protocol.Runstate, Is.EqualTo(before), $"{name} left the runstate unchanged");
        }
    }

    private static async Task AssertSocketOpenIsRefusedAsync(LineProtocol protocol, Runstate state, string message)
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        using var connected = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await connected.ConnectAsync(endPoint).Bounded();

        var error = await Assert.ThrowsAsync<StateException>(() => protocol.OpenAsync(connected).Bounded());

        AssertStateError(error, state, Runstate.Idle, message, "OpenAsync(Socket)");
        Assert.That(connected.Connected, Is.True, "a refused OpenAsync does not take the socket");
    }

    private static void AssertStateError(StateException? error, Runstate state, Runstate required, string message, string? call = null)
    {
        Assert.That(error, Is.Not.Null, call);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(error!.State, Is.EqualTo(state), call);
            Assert.That(error.Required, Is.EqualTo(required), call);
            Assert.That(error.Message, Is.EqualTo(message), call);
        }
    }
}
