using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
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

/// <summary>
/// Base of the Session specifications in this folder: owns the protocol objects a test creates
/// and disposes them after it, each disposal bounded, so that a hang fails the test.
/// </summary>
public abstract class SessionSpecBase
{
    private readonly List<IAsyncDisposable> _owned = [];

    [TearDown]
    public async Task DisposeOwnedAsync()
    {
        var owned = _owned.ToArray();
        _owned.Clear();
        for (var i = owned.Length - 1; i >= 0; i--)
        {
            await owned[i].DisposeAsync().Bounded();
        }
    }

    /// <summary>Disposes <paramref name="disposable"/> after the test, in reverse order of creation.</summary>
    private protected T Own<T>(T disposable)
        where T : IAsyncDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }
}

/// <summary>Records RunstateChanged events, thread-safely.</summary>
internal sealed class RunstateRecorder
{
    private readonly List<(Runstate Previous, Runstate Current)> _transitions = [];

    public RunstateRecorder(LineProtocol protocol)
    {
        protocol.RunstateChanged += (_, e) =>
        {
            lock (_transitions)
            {
                _transitions.Add((e.Previous, e.Current));
            }
        };
    }

    public IReadOnlyList<(Runstate Previous, Runstate Current)> Transitions
    {
        get
        {
            lock (_transitions)
            {
                return [.. _transitions];
            }
        }
    }
}

/// <summary>Shared helpers of the Session specifications in this folder.</summary>
internal static class SessionSpecKit
{
    /// <summary>No lingering after a graceful close, so tests stay fast.</summary>
    public static PipeProtocolOptions Quick { get; } = new() { LingerTimeout = TimeSpan.Zero };

    /// <summary>The transitions of an attempt that failed or was cancelled and rolled back.</summary>
    public static (Runstate, Runstate)[] RolledBack { get; } =
    [
        (Runstate.Idle, Runstate.Connecting),
        (Runstate.Connecting, Runstate.Disconnecting),
        (Runstate.Disconnecting, Runstate.Idle),
    ];

    public static IPEndPoint Loopback0 => new(IPAddress.Loopback, 0);

    public static UnixDomainSocketEndPoint MissingUnixPath() => new(TempPaths.NewSocketPath());

    /// <summary>Two crossed in-memory pipes: what one end writes, the other reads.</summary>
    public static (IDuplexPipe Left, IDuplexPipe Right) CrossedPipes()
    {
        var options = new PipeOptions(useSynchronizationContext: false);
        var leftToRight = new Pipe(options);
        var rightToLeft = new Pipe(options);
        return (new PipeEnds(rightToLeft.Reader, leftToRight.Writer), new PipeEnds(leftToRight.Reader, rightToLeft.Writer));
    }

    /// <summary>Opens two protocols on the two ends of crossed in-memory pipes; both end Running.</summary>
    public static async Task OpenPairAsync(LineProtocol left, LineProtocol right)
    {
        var (a, b) = CrossedPipes();
        await Task.WhenAll(left.OpenAsync(a), right.OpenAsync(b)).Bounded();
    }

    /// <summary>
    /// Collects the first <paramref name="count"/> runstates of a watch. The enumeration starts
    /// (and takes its starting point) synchronously, inside this call.
    /// </summary>
    public static async Task<List<Runstate>> CollectAsync(IAsyncEnumerable<Runstate> source, int count)
    {
        var states = new List<Runstate>();
        await foreach (var state in source)
        {
            states.Add(state);
            if (states.Count == count)
            {
                break;
            }
        }

        return states;
    }

    /// <summary>A plain listening socket on loopback, for a raw peer.</summary>
    public static Socket ListenRaw(out IPEndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(8);
        endPoint = (IPEndPoint)socket.LocalEndPoint!;
        return socket;
    }

    /// <summary>A bound socket that does not listen: connecting to its port is refused.</summary>
    public static Socket BindWithoutListening(out IPEndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        endPoint = (IPEndPoint)socket.LocalEndPoint!;
        return socket;
    }

    /// <summary>Reads one '\n'-terminated line from a raw socket, byte by byte (never past the line).</summary>
    public static async Task<string> ReadLineAsync(Socket socket)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            var read = await socket.ReceiveAsync(one, SocketFlags.None).Bounded();
            if (read == 0)
            {
                throw new EndOfStreamException($"EOF after {bytes.Count} bytes of a line.");
            }

            if (one[0] == (byte)'\n')
            {
                return Encoding.UTF8.GetString([.. bytes]);
            }

            bytes.Add(one[0]);
        }
    }

    /// <summary>Reads one '\n'-terminated line from a raw pipe end.</summary>
    public static async Task<string> ReadLineAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync().AsTask().Bounded();
            var buffer = result.Buffer;
            var newline = buffer.PositionOf((byte)'\n');
            if (newline is { } end)
            {
                var line = Encoding.UTF8.GetString(buffer.Slice(0, end));
                reader.AdvanceTo(buffer.GetPosition(1, end));
                return line;
            }

            if (result.IsCompleted)
            {
                reader.AdvanceTo(buffer.End);
                throw new EndOfStreamException("EOF in the middle of a line.");
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Writes text to a raw pipe end in one flush.</summary>
    public static async Task WriteAsync(PipeWriter writer, string text)
        => await writer.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask().Bounded();

    /// <summary>Reads a raw socket until the end of the stream; returns what was read, fails on a reset or a hang.</summary>
    public static async Task<string> ReadToEndAsync(Socket socket)
    {
        var all = new List<byte>();
        var buffer = new byte[4096];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None).Bounded();
            if (read == 0)
            {
                return Encoding.UTF8.GetString([.. all]);
            }

            all.AddRange(buffer.AsSpan(0, read));
        }
    }

    /// <summary>Reads a raw pipe end until its writer completes; returns what was read.</summary>
    public static async Task<string> ReadToEndAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync().AsTask().Bounded();
            if (result.IsCompleted)
            {
                var text = Encoding.UTF8.GetString(result.Buffer);
                reader.AdvanceTo(result.Buffer.End);
                return text;
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails after the default bound.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting until {what}.");
            }

            await Task.Delay(5);
        }
    }

    /// <summary>Whether a TCP connect to <paramref name="endPoint"/> is refused.</summary>
    public static async Task<bool> IsRefusedAsync(EndPoint endPoint)
    {
        using var probe = new Socket(endPoint.AddressFamily, SocketType.Stream, endPoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
        try
        {
            await probe.ConnectAsync(endPoint).Bounded();
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
        {
            return true;
        }
    }

    private sealed class PipeEnds(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
