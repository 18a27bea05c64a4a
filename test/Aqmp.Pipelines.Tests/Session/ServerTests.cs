using System.Net;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// The server side of a session: <c>StartServerAsync</c>, <c>AcceptAsync</c> and
/// <c>StartServerAndAcceptAsync</c> (the seed's <c>start_server</c>, <c>accept</c>,
/// <c>start_server_and_accept</c> and <c>_incoming</c>): exactly one peer is served.
/// </summary>
public class ServerTests
{
    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [Test]
    public async Task StartServerAsync_on_port_0_returns_the_port_actually_bound_and_stays_Connecting()
    {
        await using var server = new LineProtocol(name: "server");

        var bound = await server.StartServerAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        Assert.That(bound, Is.TypeOf<IPEndPoint>());
        var ip = (IPEndPoint)bound;
        Assert.That(ip.Address, Is.EqualTo(IPAddress.Loopback));
        Assert.That(ip.Port, Is.Not.Zero);
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Connecting));

        await using var client = new LineProtocol(name: "client");
        var accept = server.AcceptAsync();
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, ip.Port)).Bounded();
        await accept.Bounded();
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Running));
        await client.DisconnectAsync().Bounded();
    }

    [Test]
    public async Task StartServerAsync_accepts_an_address_given_as_text()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");

        var bound = (IPEndPoint)await server.StartServerAsync("127.0.0.1:0").Bounded();
        var accept = server.AcceptAsync();
        await client.ConnectAsync($"127.0.0.1:{bound.Port}").Bounded();
        await accept.Bounded();

        await client.SendLineAsync("by text").Bounded();
        Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo("by text"));
        await client.DisconnectAsync().Bounded();
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task StartServerAndAcceptAsync_listens_accepts_one_peer_and_runs_the_session(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        EndPoint endPoint = transport == TransportKind.Unix ? _socketFiles.NewEndPoint() : new IPEndPoint(IPAddress.Loopback, SessionSpecKit.FreeTcpPort());

        var serving = server.StartServerAndAcceptAsync(endPoint);
        await SessionConnector.ConnectWhenListeningAsync(client, endPoint);
        var bound = await serving.Bounded();

        Assert.That(bound.ToString(), Is.EqualTo(endPoint.ToString()));
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Running));
        await client.SendLineAsync("hello").Bounded();
        Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo("hello"));
        await server.SendLineAsync("hi").Bounded();
        Assert.That(await client.NextLineAsync().Bounded(), Is.EqualTo("hi"));

        await client.DisconnectAsync().Bounded();
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task An_extraneous_connection_queued_before_the_accept_is_closed_and_never_served(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var bound = await server.StartServerAsync(transport.BindEndPoint(_socketFiles)).Bounded();

        // Both connect while the listener is up: both wait in its backlog, the protocol client first.
        await client.ConnectAsync(bound).Bounded();
        using var intruder = NewSocket(transport);
        await intruder.ConnectAsync(bound).Bounded();
        await TrySendAsync(intruder, "intruder\n");

        await server.AcceptAsync().Bounded();

        Assert.That(await ReadUntilClosedAsync(intruder), Is.Empty, "the extraneous connection is closed without a byte");
        await client.SendLineAsync("legit").Bounded();
        Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo("legit"));
        await server.SendLineAsync("served").Bounded();
        Assert.That(await client.NextLineAsync().Bounded(), Is.EqualTo("served"));
        await client.DisconnectAsync().Bounded();
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
        Assert.That(server.Received.TryRead(out var stray), Is.False, $"the server received '{stray}' from the extraneous connection");
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task A_connection_attempted_after_the_accept_is_refused_and_never_served(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var bound = await SessionConnector.ListenAndConnectAsync(server, client, transport.BindEndPoint(_socketFiles));

        using var intruder = NewSocket(transport);
        await AssertConnectFailsOrIsClosedAsync(intruder, bound);

        await client.SendLineAsync("legit").Bounded();
        Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo("legit"));
        await client.DisconnectAsync().Bounded();
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
        Assert.That(server.Received.TryRead(out var stray), Is.False, $"the server received '{stray}' from the extraneous connection");
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task A_connection_attempted_while_the_first_is_being_accepted_is_closed_and_never_served(TransportKind transport)
    {
        // The server's handshake holds the accept open while a second peer tries to connect.
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var inHandshake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finishHandshake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Handshake = async (_, handshake, token) =>
        {
            inHandshake.TrySetResult();
            await finishHandshake.Task.WaitAsync(token);
        };
        var bound = await server.StartServerAsync(transport.BindEndPoint(_socketFiles)).Bounded();
        var accept = server.AcceptAsync();
        await client.ConnectAsync(bound).Bounded();
        await inHandshake.Task.Bounded();

        using var intruder = NewSocket(transport);
        await AssertConnectFailsOrIsClosedAsync(intruder, bound);
        finishHandshake.SetResult();
        await accept.Bounded();

        await client.SendLineAsync("legit").Bounded();
        Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo("legit"));
        await client.DisconnectAsync().Bounded();
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync().Bounded());
        Assert.That(server.Received.TryRead(out var stray), Is.False, $"the server received '{stray}' from the extraneous connection");
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task DisconnectAsync_after_StartServerAsync_closes_the_listener_and_returns_to_Idle(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        var bound = await server.StartServerAsync(transport.BindEndPoint(_socketFiles)).Bounded();
        var recorder = new RunstateRecorder(server);

        await server.DisconnectAsync().Bounded();

        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.States, Is.EqualTo(new[] { Runstate.Disconnecting, Runstate.Idle }));
        await AssertListenerClosedAsync(transport, bound);
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task Cancelling_AcceptAsync_closes_the_listener_and_returns_to_Idle(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        var bound = await server.StartServerAsync(transport.BindEndPoint(_socketFiles)).Bounded();
        using var cts = new CancellationTokenSource();

        var accept = server.AcceptAsync(cts.Token);
        await Task.Delay(50);
        Assert.That(accept.IsCompleted, Is.False, "AcceptAsync waits for a peer");
        await cts.CancelAsync();

        await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
        await AssertListenerClosedAsync(transport, bound);
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task DisconnectAsync_while_AcceptAsync_waits_cancels_the_accept_and_closes_the_listener(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        var bound = await server.StartServerAsync(transport.BindEndPoint(_socketFiles)).Bounded();
        var accept = server.AcceptAsync();
        await Task.Delay(50);

        await server.DisconnectAsync().Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
        await AssertListenerClosedAsync(transport, bound);
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task After_a_session_ends_the_server_object_listens_and_accepts_again(TransportKind transport)
    {
        await using var server = new LineProtocol(name: "server");
        for (var round = 0; round < 3; round++)
        {
            await using var client = new LineProtocol(name: $"client{round}");
            await SessionConnector.ListenAndConnectAsync(server, client, transport.BindEndPoint(_socketFiles));

            await client.SendLineAsync($"round {round}").Bounded();
            Assert.That(await server.NextLineAsync().Bounded(), Is.EqualTo($"round {round}"));
            await server.DisconnectAsync().Bounded();
            await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());
        }

        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    private static Socket NewSocket(TransportKind transport) => transport == TransportKind.Unix
        ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    private static async Task TrySendAsync(Socket socket, string text)
    {
        try
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(text)).Bounded();
        }
        catch (SocketException)
        {
            // Already reset: fine, the point is that nothing is served.
        }
    }

    /// <summary>Reads until EOF or a reset; returns whatever arrived before.</summary>
    private static async Task<string> ReadUntilClosedAsync(Socket socket)
    {
        var received = new StringBuilder();
        var buffer = new byte[1024];
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer).Bounded();
                if (read == 0)
                {
                    break;
                }

                received.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }
        }
        catch (SocketException)
        {
            // A reset also means: closed, not served.
        }

        return received.ToString();
    }

    /// <summary>An extraneous peer either cannot connect, or is closed at once without a byte.</summary>
    private static async Task AssertConnectFailsOrIsClosedAsync(Socket intruder, EndPoint endPoint)
    {
        try
        {
            await intruder.ConnectAsync(endPoint).Bounded();
        }
        catch (SocketException)
        {
            return;
        }

        await TrySendAsync(intruder, "intruder\n");
        Assert.That(await ReadUntilClosedAsync(intruder), Is.Empty, "the extraneous connection is closed without a byte");
    }

    private static async Task AssertListenerClosedAsync(TransportKind transport, EndPoint bound)
    {
        if (transport == TransportKind.Unix)
        {
            Assert.That(File.Exists(((UnixDomainSocketEndPoint)bound).ToString()), Is.False, "the Unix socket file is removed");
        }

        using var probe = NewSocket(transport);
        await Assert.CatchAsync<SocketException>(() => probe.ConnectAsync(bound).Bounded(), "connecting to a closed listener is refused");
    }
}
