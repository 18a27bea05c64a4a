using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// Establishing a session (connect, listen and accept, open) and the seed's <c>_session_guard</c>:
/// a failure is a ConnectException wrapping its root cause, a cancellation is never wrapped, and
/// either way the object is back to Idle with nothing left open, ready to connect again.
/// </summary>
public class ConnectTests : SessionSpecBase
{
    // ---- Connection failures -------------------------------------------------------------

    [Test]
    public async Task A_refused_TCP_connect_raises_ConnectException_wrapping_the_SocketException()
    {
        using var refusing = SessionSpecKit.BindWithoutListening(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));

        var error = await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(endPoint).Bounded());

        AssertConnectionFailure(error);
        Assert.That(((SocketException)error!.InnerException!).SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task Connecting_to_an_unknown_host_raises_ConnectException_wrapping_the_SocketException()
    {
        var client = Own(new LineProtocol(SessionSpecKit.Quick));

        var error = await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync("nonexistent.invalid:80").Bounded());

        AssertConnectionFailure(error);
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task Connecting_to_a_missing_Unix_socket_path_raises_ConnectException_wrapping_the_SocketException()
    {
        var client = Own(new LineProtocol(SessionSpecKit.Quick));

        var error = await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(SessionSpecKit.MissingUnixPath()).Bounded());

        AssertConnectionFailure(error);
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task After_a_failed_connect_the_same_object_connects_successfully()
    {
        using var refusing = SessionSpecKit.BindWithoutListening(out var refused);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(refused).Bounded());
        await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(SessionSpecKit.MissingUnixPath()).Bounded());

        await SessionConnector.ListenAndConnectAsync(listening, client, SessionSpecKit.Loopback0);

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        await client.SendLineAsync("second time lucky").Bounded();
        Assert.That(await listening.NextLineAsync().Bounded(), Is.EqualTo("second time lucky"));
    }

    [Test]
    public void ConnectException_message_is_the_phase_then_the_cause_message()
    {
        var cause = new IOException("broken pipe");

        var error = new ConnectException("Failed to establish connection", cause);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(error.ErrorMessage, Is.EqualTo("Failed to establish connection"));
            Assert.That(error.InnerException, Is.SameAs(cause));
            Assert.That(error.Message, Is.EqualTo("Failed to establish connection: broken pipe"));
        }
    }

    [Test]
    public void ConnectException_message_names_the_cause_type_when_the_cause_has_no_message()
    {
        var error = new ConnectException("Failed to establish session", new SilentException());

        using (Assert.EnterMultipleScope())
        {
            Assert.That(error.ErrorMessage, Is.EqualTo("Failed to establish session"));
            Assert.That(error.Message, Is.EqualTo("Failed to establish session: SilentException"));
            Assert.That(new ConnectException("X", new InvalidOperationException(string.Empty)).Message, Is.EqualTo("X: InvalidOperationException"));
        }
    }

    [Test]
    public void ConnectException_requires_a_cause()
    {
        Assert.Throws<ArgumentNullException>(() => _ = new ConnectException("Failed to establish connection", null!));
    }

    [TestCase("no-port-here")]
    [TestCase("localhost:99999")]
    [TestCase("localhost:port")]
    [TestCase("::1:4444")]
    [TestCase("[not-v6]:4444")]
    [TestCase("unix:")]
    public async Task ConnectAsync_with_a_malformed_address_raises_FormatException_and_makes_no_transition(string address)
    {
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(client);

        await Assert.ThrowsAsync<FormatException>(async () => await client.ConnectAsync(address).Bounded());

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.Transitions, Is.Empty);
    }

    [Test]
    public async Task ConnectAsync_accepts_TCP_and_Unix_addresses_given_as_text()
    {
        var path = TempPaths.NewSocketPath();
        try
        {
            var tcpListening = Own(new LineProtocol(SessionSpecKit.Quick));
            var unixListening = Own(new LineProtocol(SessionSpecKit.Quick));
            var tcpClient = Own(new LineProtocol(SessionSpecKit.Quick));
            var unixClient = Own(new LineProtocol(SessionSpecKit.Quick));
            var tcp = (IPEndPoint)await tcpListening.StartServerAsync("127.0.0.1:0").Bounded();
            await unixListening.StartServerAsync($"unix:{path}").Bounded();
            var tcpAccept = tcpListening.AcceptAsync();
            var unixAccept = unixListening.AcceptAsync();

            await tcpClient.ConnectAsync($"127.0.0.1:{tcp.Port}").Bounded();
            await unixClient.ConnectAsync(path).Bounded();
            await Task.WhenAll(tcpAccept, unixAccept).Bounded();

            await tcpClient.SendLineAsync("over tcp").Bounded();
            await unixClient.SendLineAsync("over unix").Bounded();
            Assert.That(await tcpListening.NextLineAsync().Bounded(), Is.EqualTo("over tcp"));
            Assert.That(await unixListening.NextLineAsync().Bounded(), Is.EqualTo("over unix"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public async Task Listening_on_a_TCP_port_in_use_raises_ConnectException_and_ends_Idle()
    {
        using var occupying = SessionSpecKit.ListenRaw(out var endPoint);
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(listening);

        var error = await Assert.ThrowsAsync<ConnectException>(() => listening.StartServerAsync(endPoint).Bounded());

        AssertConnectionFailure(error);
        Assert.That(((SocketException)error!.InnerException!).SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.Transitions, Is.EqualTo(SessionSpecKit.RolledBack));
    }

    [Test]
    public async Task Listening_on_a_Unix_path_that_exists_raises_ConnectException_and_leaves_the_file_alone()
    {
        var path = TempPaths.NewSocketPath();
        await File.WriteAllTextAsync(path, "not a socket");
        try
        {
            var listening = Own(new LineProtocol(SessionSpecKit.Quick));

            var error = await Assert.ThrowsAsync<ConnectException>(() => listening.StartServerAsync(new UnixDomainSocketEndPoint(path)).Bounded());

            AssertConnectionFailure(error);
            Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(await File.ReadAllTextAsync(path), Is.EqualTo("not a socket"), "the existing file is never deleted");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public async Task A_TLS_connect_and_accept_establish_an_encrypted_session()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var client = Own(new LineProtocol(SessionSpecKit.Quick));

        await SessionConnector.ListenAndConnectAsync(listening, client, SessionSpecKit.Loopback0, TestCertificates.ServerOptions(), TestCertificates.ClientOptions());

        await client.SendLineAsync("secret").Bounded();
        Assert.That(await listening.NextLineAsync().Bounded(), Is.EqualTo("secret"));
    }

    [Test]
    public async Task A_rejected_TLS_certificate_raises_ConnectException_wrapping_AuthenticationException_and_ends_Idle()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var bound = await listening.StartServerAsync(SessionSpecKit.Loopback0, TestCertificates.ServerOptions()).Bounded();
        var accept = listening.AcceptAsync();
        var distrustful = new System.Net.Security.SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            RemoteCertificateValidationCallback = (_, _, _, _) => false,
        };

        var error = await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(bound, distrustful).Bounded());

        Assert.That(error!.ErrorMessage, Is.EqualTo("Failed to establish connection"));
        Assert.That(error.InnerException, Is.InstanceOf<System.Security.Authentication.AuthenticationException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));

        // The accepting side's outcome depends on the TLS version: with TLS 1.3 it may finish its
        // half of the handshake before the client rejects the certificate. It must not hang.
        await accept.ContinueWith(_ => { }, TaskScheduler.Default).Bounded();
    }

    [Test]
    public async Task After_accepting_one_peer_the_listener_stops_listening()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var client = Own(new LineProtocol(SessionSpecKit.Quick));

        var bound = await SessionConnector.ListenAndConnectAsync(listening, client, SessionSpecKit.Loopback0);

        Assert.That(await SessionSpecKit.IsRefusedAsync(bound), Is.True, "a second peer is refused");
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task ToString_shows_Connecting_while_listening()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick, name: "srv"));
        await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();

        Assert.That(listening.ToString(), Is.EqualTo("<LineProtocol name='srv' runstate=Connecting>"));
    }

    // ---- Cancellation ----------------------------------------------------------------------

    [Test]
    public async Task A_connect_with_an_already_cancelled_token_raises_OperationCanceledException_and_ends_Idle()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));

        var error = await Assert.CatchAsync<OperationCanceledException>(() => client.ConnectAsync(endPoint, cancellationToken: new CancellationToken(true)).Bounded());

        Assert.That(error, Is.Not.InstanceOf<ConnectException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task Cancelling_a_connect_whose_handshake_waits_raises_OperationCanceledException_ends_Idle_and_closes_the_socket()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var handshakeStarted = SessionSpecKit.StallHandshake(client); // the peer never sends anything
        using var cts = new CancellationTokenSource();

        var connect = client.ConnectAsync(endPoint, cancellationToken: cts.Token);
        using var peer = await listener.AcceptAsync().Bounded();
        await handshakeStarted.Bounded();
        await cts.CancelAsync().Bounded();

        var error = await Assert.CatchAsync<OperationCanceledException>(() => connect.Bounded());
        Assert.That(error, Is.Not.InstanceOf<ConnectException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.ReadToEndAsync(peer), Is.Empty, "the peer sees the end of the stream");
    }

    [Test]
    public async Task After_a_cancelled_connect_the_same_object_connects_successfully()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        await Assert.CatchAsync<OperationCanceledException>(() => client.ConnectAsync(endPoint, cancellationToken: new CancellationToken(true)).Bounded());

        await client.ConnectAsync(endPoint).Bounded();
        using var peer = await listener.AcceptAsync().Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        await client.SendLineAsync("hello").Bounded();
        Assert.That(await SessionSpecKit.ReadLineAsync(peer), Is.EqualTo("hello"));
    }

    [Test]
    public async Task A_cancelled_TCP_accept_raises_OperationCanceledException_ends_Idle_and_closes_the_listener()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var bound = await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        using var cts = new CancellationTokenSource();

        var accept = listening.AcceptAsync(cts.Token);
        await cts.CancelAsync().Bounded();

        var error = await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
        Assert.That(error, Is.Not.InstanceOf<ConnectException>());
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.IsRefusedAsync(bound), Is.True, "a new connect to the old port is refused");
    }

    [Test]
    public async Task A_cancelled_accept_raises_OperationCanceledException_carrying_the_callers_token()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        using var cts = new CancellationTokenSource();

        var accept = listening.AcceptAsync(cts.Token);
        await cts.CancelAsync().Bounded();

        var error = await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
        Assert.That(error!.CancellationToken, Is.EqualTo(cts.Token));
    }

    [Test]
    public async Task Listening_with_an_already_cancelled_token_raises_OperationCanceledException_and_ends_Idle()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(listening);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        var error = await Assert.CatchAsync<OperationCanceledException>(() => listening.StartServerAsync(SessionSpecKit.Loopback0, cancellationToken: cts.Token).Bounded());

        Assert.That(error!.CancellationToken, Is.EqualTo(cts.Token));
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.Transitions, Is.EqualTo(new[] { (Runstate.Idle, Runstate.Connecting), (Runstate.Connecting, Runstate.Disconnecting), (Runstate.Disconnecting, Runstate.Idle) }));
    }

    [Test]
    public void An_unsupported_endpoint_type_raises_ArgumentException_before_any_transition()
    {
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(client);

        Assert.ThrowsAsync<ArgumentException>(() => client.ConnectAsync(new UnsupportedEndPoint()));
        Assert.ThrowsAsync<ArgumentException>(() => client.StartServerAsync(new UnsupportedEndPoint()));

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.Transitions, Is.Empty);
    }

    private sealed class UnsupportedEndPoint : EndPoint
    {
    }

    [Test]
    public async Task A_cancelled_Unix_accept_raises_OperationCanceledException_ends_Idle_and_removes_the_socket_file()
    {
        var path = TempPaths.NewSocketPath();
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        try
        {
            var bound = await listening.StartServerAsync(new UnixDomainSocketEndPoint(path)).Bounded();
            Assert.That(File.Exists(path), Is.True, "listening creates the socket file");
            using var cts = new CancellationTokenSource();

            var accept = listening.AcceptAsync(cts.Token);
            await cts.CancelAsync().Bounded();

            var error = await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
            Assert.That(error, Is.Not.InstanceOf<ConnectException>());
            Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(await SessionSpecKit.IsRefusedAsync(bound), Is.True, "a new connect to the old path fails");
            Assert.That(File.Exists(path), Is.False, "the socket file is gone");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public async Task After_a_cancelled_accept_the_same_object_can_listen_and_accept_again()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        await Assert.CatchAsync<OperationCanceledException>(() => listening.AcceptAsync(new CancellationToken(true)).Bounded());

        await SessionConnector.ListenAndConnectAsync(listening, client, SessionSpecKit.Loopback0);

        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task Hanging_up_during_a_pending_connect_handshake_cancels_the_connect_and_ends_Idle()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var handshakeStarted = SessionSpecKit.StallHandshake(client);
        var recorder = new RunstateRecorder(client);

        var connect = client.ConnectAsync(endPoint);
        using var peer = await listener.AcceptAsync().Bounded();
        await handshakeStarted.Bounded();
        await client.DisconnectAsync().Bounded();

        var error = await Assert.CatchAsync<OperationCanceledException>(() => connect.Bounded());
        Assert.That(error, Is.Not.InstanceOf<ConnectException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.Transitions, Is.EqualTo(SessionSpecKit.RolledBack));
        Assert.That(await SessionSpecKit.ReadToEndAsync(peer), Is.Empty, "the peer sees the end of the stream");
    }

    [Test]
    public async Task Hanging_up_during_a_pending_accept_cancels_the_accept_ends_Idle_and_closes_the_listener()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var bound = await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        var accept = listening.AcceptAsync();

        await listening.DisconnectAsync().Bounded();

        var error = await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
        Assert.That(error, Is.Not.InstanceOf<ConnectException>());
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.IsRefusedAsync(bound), Is.True, "the listener is closed");
    }

    [Test]
    public async Task Hanging_up_while_listening_without_accepting_closes_the_listener_and_ends_Idle()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var bound = await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();

        await listening.DisconnectAsync().Bounded();

        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.IsRefusedAsync(bound), Is.True, "the listener is closed");
    }

    [Test]
    public async Task Disposing_during_a_pending_connect_handshake_cancels_the_connect_and_ends_Idle()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = new LineProtocol(SessionSpecKit.Quick);
        var handshakeStarted = SessionSpecKit.StallHandshake(client);

        var connect = client.ConnectAsync(endPoint);
        using var peer = await listener.AcceptAsync().Bounded();
        await handshakeStarted.Bounded();
        await client.DisposeAsync().Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => connect.Bounded());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.ReadToEndAsync(peer), Is.Empty, "the peer sees the end of the stream");
    }

    [Test]
    public async Task Disposing_while_listening_closes_the_listener_and_ends_Idle()
    {
        var listening = new LineProtocol(SessionSpecKit.Quick);
        var bound = await listening.StartServerAsync(SessionSpecKit.Loopback0).Bounded();
        var accept = listening.AcceptAsync();

        await listening.DisposeAsync().Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.IsRefusedAsync(bound), Is.True, "the listener is closed");
    }

    [Test]
    public async Task A_handshake_that_ignores_cancellation_still_loses_to_a_hang_up_requested_meanwhile()
    {
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var handshakeStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.Handshake = async (_, handshake, _) =>
        {
            handshakeStarted.TrySetResult();
            await release.Task; // deliberately deaf to the token
        };

        var open = protocol.OpenAsync(mine);
        await handshakeStarted.Task.Bounded();
        var hangUp = protocol.DisconnectAsync();
        await Task.Delay(20);
        Assert.That(hangUp.IsCompleted, Is.False, "the hang-up waits for the attempt to finish");
        release.SetResult();

        await hangUp.Bounded();
        await Assert.CatchAsync<OperationCanceledException>(() => open.Bounded());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await SessionSpecKit.ReadToEndAsync(peer.Input), Is.Empty, "the pipe is completed");
    }

    // ---- Opening existing transports -----------------------------------------------------

    [Test]
    public async Task OpenAsync_on_crossed_in_memory_pipes_runs_a_session_both_ways()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        var (a, b) = SessionSpecKit.CrossedPipes();
        var recorder = new RunstateRecorder(left);

        await left.OpenAsync(a).Bounded();
        await right.OpenAsync(b).Bounded();

        Assert.That(recorder.Transitions, Is.EqualTo(new[] { (Runstate.Idle, Runstate.Connecting), (Runstate.Connecting, Runstate.Running) }));
        await left.SendLineAsync("ping").Bounded();
        Assert.That(await right.NextLineAsync().Bounded(), Is.EqualTo("ping"));
        await right.SendLineAsync("pong").Bounded();
        Assert.That(await left.NextLineAsync().Bounded(), Is.EqualTo("pong"));

        await left.DisconnectAsync().Bounded();
        await Assert.ThrowsAsync<EndOfStreamException>(() => right.DisconnectAsync().Bounded());
    }

    [Test]
    public async Task OpenAsync_on_a_connected_socket_pair_runs_a_session_both_ways()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var dialling = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await dialling.ConnectAsync(endPoint).Bounded();
        var accepted = await listener.AcceptAsync().Bounded();
        var left = Own(new LineProtocol(SessionSpecKit.Quick));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));

        await left.OpenAsync(dialling).Bounded();
        await right.OpenAsync(accepted).Bounded();

        Assert.That((left.Runstate, right.Runstate), Is.EqualTo((Runstate.Running, Runstate.Running)));
        await left.SendLineAsync("ping").Bounded();
        Assert.That(await right.NextLineAsync().Bounded(), Is.EqualTo("ping"));
        await right.SendLineAsync("pong").Bounded();
        Assert.That(await left.NextLineAsync().Bounded(), Is.EqualTo("pong"));
    }

    [Test]
    public async Task OpenAsync_on_a_stream_runs_a_session_both_ways()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var dialling = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await dialling.ConnectAsync(endPoint).Bounded();
        using var peer = await listener.AcceptAsync().Bounded();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));

        await protocol.OpenAsync(new NetworkStream(dialling, ownsSocket: true)).Bounded();

        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Running));
        await protocol.SendLineAsync("ping").Bounded();
        Assert.That(await SessionSpecKit.ReadLineAsync(peer), Is.EqualTo("ping"));
        await peer.SendAsync(Encoding.UTF8.GetBytes("pong\n"), SocketFlags.None).Bounded();
        Assert.That(await protocol.NextLineAsync().Bounded(), Is.EqualTo("pong"));

        await protocol.DisconnectAsync().Bounded();
        Assert.That(await SessionSpecKit.ReadToEndAsync(peer), Is.Empty, "hanging up closes the stream");
    }

    [Test]
    public async Task OpenAsync_with_an_unconnected_socket_raises_ArgumentException_and_makes_no_transition()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(protocol);
        using var unconnected = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        await Assert.ThrowsAsync<ArgumentException>(async () => await protocol.OpenAsync(unconnected).Bounded());

        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.Transitions, Is.Empty);
    }

    [Test]
    public async Task OpenAsync_with_a_read_only_stream_raises_ArgumentException_and_makes_no_transition()
    {
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick));
        var recorder = new RunstateRecorder(protocol);
        using var readOnly = new MemoryStream([1, 2, 3], writable: false);

        await Assert.ThrowsAsync<ArgumentException>(async () => await protocol.OpenAsync(readOnly).Bounded());

        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(recorder.Transitions, Is.Empty);
    }

    [Test]
    public async Task Listening_and_accepting_in_one_call_returns_the_bound_endpoint_once_Running()
    {
        var listening = Own(new LineProtocol(SessionSpecKit.Quick));
        var client = Own(new LineProtocol(SessionSpecKit.Quick));
        var port = SessionSpecKit.FreeTcpPort();

        var both = listening.StartServerAndAcceptAsync(new IPEndPoint(IPAddress.Loopback, port));
        await SessionSpecKit.WaitUntilAsync(() => listening.Runstate == Runstate.Connecting, "listening");
        await SessionConnector.ConnectWhenListeningAsync(client, new IPEndPoint(IPAddress.Loopback, port));
        var bound = await both.Bounded();

        Assert.That(((IPEndPoint)bound).Port, Is.EqualTo(port));
        Assert.That(listening.Runstate, Is.EqualTo(Runstate.Running));
    }

    private static void AssertConnectionFailure(ConnectException? error)
    {
        Assert.That(error, Is.Not.Null);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(error!.ErrorMessage, Is.EqualTo("Failed to establish connection"));
            Assert.That(error.InnerException, Is.InstanceOf<SocketException>());
            Assert.That(error.Message, Is.EqualTo($"Failed to establish connection: {error.InnerException!.Message}"));
        }
    }

    private sealed class SilentException : Exception
    {
        public SilentException()
            : base(string.Empty)
        {
        }
    }
}
