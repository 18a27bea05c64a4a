using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Aqmp.Pipelines.Testing;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

public class SocketTransportTests
{
    private const int MiB = 1024 * 1024;
    private const long BulkSize = 8 * MiB;

    private static readonly TransportKind[] AllKinds = Enum.GetValues<TransportKind>();

    private static readonly TransportKind[] CloseKinds = [TransportKind.Tcp4, TransportKind.Unix, TransportKind.TlsTcp, TransportKind.TlsUnix];

    private static readonly string[] CloseOrders =
    [
        "Close,Close",
        "Abort,Abort",
        "Dispose,Dispose",
        "Close,Abort,Dispose",
        "Close,Dispose,Abort",
        "Abort,Close,Dispose",
        "Abort,Dispose,Close",
        "Dispose,Close,Abort",
        "Dispose,Abort,Close",
    ];

    /// <summary>Send-pipe options whose flushes never wait, so a test can queue megabytes before the peer reads.</summary>
    private static TransportOptions Unthrottled(TimeSpan? linger = null) => new()
    {
        SendPipeOptions = new PipeOptions(pauseWriterThreshold: 128L * MiB, resumeWriterThreshold: 64L * MiB),
        LingerTimeout = linger ?? TransportOptions.Default.LingerTimeout,
    };

    // ---- End to end --------------------------------------------------------------------------

    [TestCaseSource(nameof(AllKinds))]
    public async Task Bytes_flushed_on_one_side_arrive_on_the_other_in_both_directions(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind);

        await PipeIO.WriteAsync(pair.Client.Pipe.Output, "ping"u8.ToArray());
        Assert.That(await PipeIO.ReadExactlyAsync(pair.Server.Pipe.Input, 4), Is.EqualTo("ping"u8.ToArray()));

        await PipeIO.WriteAsync(pair.Server.Pipe.Output, "pong!"u8.ToArray());
        Assert.That(await PipeIO.ReadExactlyAsync(pair.Client.Pipe.Input, 5), Is.EqualTo("pong!"u8.ToArray()));

        // Both directions at once.
        var up = PipeIO.WriteAsync(pair.Client.Pipe.Output, [1, 2, 3]);
        var down = PipeIO.WriteAsync(pair.Server.Pipe.Output, [4, 5]);
        await Task.WhenAll(up, down).Bounded();
        Assert.That(await PipeIO.ReadExactlyAsync(pair.Server.Pipe.Input, 3), Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(await PipeIO.ReadExactlyAsync(pair.Client.Pipe.Input, 2), Is.EqualTo(new byte[] { 4, 5 }));
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Tcp6)]
    [TestCase(TransportKind.TlsTcp)]
    public async Task A_TCP_connection_reports_matching_local_and_remote_endpoints_on_both_sides(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind);
        var bound = (IPEndPoint)pair.Listener.LocalEndPoint;

        Assert.That(bound.Port, Is.Not.Zero, "port 0 was replaced by the real port");
        Assert.That(pair.Client.RemoteEndPoint, Is.EqualTo(bound));
        Assert.That(pair.Server.LocalEndPoint, Is.EqualTo(bound));
        Assert.That(pair.Client.LocalEndPoint, Is.Not.Null);
        Assert.That(pair.Server.RemoteEndPoint, Is.EqualTo(pair.Client.LocalEndPoint));
        Assert.That(pair.Client.ToString(), Does.Contain(bound.ToString()));
    }

    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task A_unix_connection_reports_the_socket_path_as_the_servers_local_and_the_clients_remote_endpoint(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind);
        var path = pair.Listener.LocalEndPoint.ToString();

        Assert.That(pair.Client.RemoteEndPoint, Is.TypeOf<UnixDomainSocketEndPoint>());
        Assert.That(pair.Client.RemoteEndPoint!.ToString(), Is.EqualTo(path));
        Assert.That(pair.Server.LocalEndPoint, Is.TypeOf<UnixDomainSocketEndPoint>());
        Assert.That(pair.Server.LocalEndPoint!.ToString(), Is.EqualTo(path));
        Assert.That(pair.Client.LocalEndPoint, Is.Not.Null, "the client's (unnamed) address is still reported");
        Assert.That(pair.Server.RemoteEndPoint, Is.Not.Null, "the client's (unnamed) address is still reported");
    }

    // ---- Graceful close ------------------------------------------------------------------------

    [Test]
    public async Task CloseAsync_right_after_many_flushes_delivers_every_byte_then_end_of_stream(
        [ValueSource(nameof(AllKinds))] TransportKind kind,
        [Values] bool clientCloses)
    {
        await using var pair = await TransportPair.CreateAsync(kind);
        var (closer, peer) = clientCloses ? (pair.Client, pair.Server) : (pair.Server, pair.Client);
        using var cts = PipeIO.Timeout();

        var reading = PipeIO.ReadPatternToEndAsync(peer.Pipe.Input, cts.Token);
        await PipeIO.WritePatternAsync(closer.Pipe.Output, BulkSize, 16 * 1024, cts.Token);
        var closing = closer.CloseAsync(cts.Token).AsTask();

        Assert.That(await reading.Bounded(), Is.EqualTo(BulkSize), "every byte, then end of stream");
        await peer.CloseAsync(cts.Token).Bounded();
        await closing.Bounded();
    }

    [TestCaseSource(nameof(CloseKinds))]
    public async Task CloseAsync_while_the_peer_is_not_reading_yet_delivers_everything_once_it_reads(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind, clientOptions: Unthrottled());
        using var cts = PipeIO.Timeout();

        var closing = await StartWithBulkQueuedAsync(pair, client => client.CloseAsync(cts.Token).AsTask(), "the close waits until the peer has taken every byte", cts.Token);

        Assert.That(await PipeIO.ReadPatternToEndAsync(pair.Server.Pipe.Input, cts.Token).Bounded(), Is.EqualTo(BulkSize));
        await pair.Server.CloseAsync(cts.Token).Bounded();
        await closing.Bounded();
    }

    [TestCaseSource(nameof(CloseKinds))]
    public async Task WaitUntilSentAsync_completes_once_the_peer_has_taken_every_flushed_byte_and_closes_nothing(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind, clientOptions: Unthrottled());
        using var cts = PipeIO.Timeout();
        var sent = await StartWithBulkQueuedAsync(pair, client => client.WaitUntilSentAsync(cts.Token).AsTask(), "it waits while the peer reads nothing", cts.Token);

        var reading = PipeIO.ReadPatternToEndAsync(pair.Server.Pipe.Input, cts.Token);
        await sent.Bounded();

        // Nothing was closed: the connection still carries bytes both ways.
        await PipeIO.WritePatternAsync(pair.Server.Pipe.Output, 1024, 1024, cts.Token);
        var result = await pair.Client.Pipe.Input.ReadAtLeastAsync(1024, cts.Token).Bounded();
        Assert.That(result.Buffer.Length, Is.EqualTo(1024));
        pair.Client.Pipe.Input.AdvanceTo(result.Buffer.End);
        await pair.Client.CloseAsync(cts.Token).Bounded();
        Assert.That(await reading.Bounded(), Is.EqualTo(BulkSize));
    }

    [Test]
    public async Task WaitUntilSentAsync_cancelled_raises_OperationCanceledException_and_discards_nothing()
    {
        await using var pair = await TransportPair.CreateAsync(TransportKind.Unix, clientOptions: Unthrottled());
        using var cts = PipeIO.Timeout();
        await PipeIO.WritePatternAsync(pair.Client.Pipe.Output, BulkSize, 64 * 1024, cts.Token);

        using var waitCts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.CatchAsync<OperationCanceledException>(() => pair.Client.WaitUntilSentAsync(waitCts.Token).AsTask().Bounded());

        var reading = PipeIO.ReadPatternToEndAsync(pair.Server.Pipe.Input, cts.Token);
        await pair.Client.CloseAsync(cts.Token).Bounded();
        Assert.That(await reading.Bounded(), Is.EqualTo(BulkSize), "every byte still arrives");
    }

    [Test]
    public async Task WaitUntilSentAsync_after_CloseAsync_or_Abort_raises_ObjectDisposedException()
    {
        await using var closed = await TransportPair.CreateAsync(TransportKind.Unix);
        await using var aborted = await TransportPair.CreateAsync(TransportKind.Unix);
        await closed.Client.CloseAsync().Bounded();
        aborted.Client.Abort();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => closed.Client.WaitUntilSentAsync().AsTask());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => aborted.Client.WaitUntilSentAsync().AsTask());
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    public async Task CloseAsync_delivers_everything_even_when_the_closing_side_left_inbound_bytes_unread(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind);
        using var cts = PipeIO.Timeout();

        // The server sends the client more than the kernel's socket buffers hold, and the client never reads it:
        // the unread bytes sit in the client's socket, and closing must not turn that into a reset.
        var serverWrites = PipeIO.WritePatternAsync(pair.Server.Pipe.Output, MiB, 16 * 1024, cts.Token);
        await Task.Delay(50);
        var reading = PipeIO.ReadPatternToEndAsync(pair.Server.Pipe.Input, cts.Token);
        await PipeIO.WritePatternAsync(pair.Client.Pipe.Output, BulkSize, 16 * 1024, cts.Token);
        var closing = pair.Client.CloseAsync(cts.Token).AsTask();

        Assert.That(await reading.Bounded(), Is.EqualTo(BulkSize));
        await serverWrites.Bounded(); // the closing client drained them while it lingered
        await pair.Server.CloseAsync(cts.Token).Bounded();
        await closing.Bounded();
    }

    [TestCaseSource(nameof(CloseKinds))]
    public async Task CloseAsync_with_nothing_written_gives_the_peer_end_of_stream(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind);
        using var cts = PipeIO.Timeout();

        var closing = pair.Client.CloseAsync(cts.Token).AsTask();

        Assert.That(await PipeIO.ReadPatternToEndAsync(pair.Server.Pipe.Input, cts.Token).Bounded(), Is.Zero);
        await pair.Server.CloseAsync(cts.Token).Bounded();
        await closing.Bounded();
    }

    [TestCaseSource(nameof(CloseKinds))]
    public async Task CloseAsync_after_the_peer_has_closed_completely_does_not_throw(TransportKind kind)
    {
        // The client closes without lingering, so its socket is gone by the time the server closes.
        var options = new TransportOptions { LingerTimeout = TimeSpan.Zero };
        await using var pair = await TransportPair.CreateAsync(kind, clientOptions: options);
        using var cts = PipeIO.Timeout();
        await PipeIO.WriteAsync(pair.Server.Pipe.Output, "delivered"u8.ToArray());
        Assert.That(await PipeIO.ReadExactlyAsync(pair.Client.Pipe.Input, 9), Is.EqualTo("delivered"u8.ToArray()));

        await pair.Client.CloseAsync(cts.Token).Bounded();
        var (_, error) = await PipeIO.DrainAsync(pair.Server.Pipe.Input, cts.Token).Bounded();
        Assert.That(error, Is.Null, "the server saw a clean end of stream");

        // Everything the server flushed was delivered long ago, so there is nothing to report.
        await pair.Server.CloseAsync(cts.Token).Bounded();
    }

    // ---- Abort ---------------------------------------------------------------------------------

    [TestCaseSource(nameof(CloseKinds))]
    public async Task Abort_discards_unsent_bytes_and_the_peer_sees_the_stream_end(TransportKind kind)
    {
        const long queued = 32L * MiB;
        await using var pair = await TransportPair.CreateAsync(kind, clientOptions: Unthrottled());
        using var cts = PipeIO.Timeout();

        await PipeIO.WritePatternAsync(pair.Client.Pipe.Output, queued, MiB, cts.Token);
        await Task.Delay(100);
        pair.Client.Abort();

        var (received, error) = await PipeIO.DrainAsync(pair.Server.Pipe.Input, cts.Token).Bounded();
        Assert.That(received, Is.LessThan(queued), "queued bytes were discarded, not sent");
        Assert.That(error, Is.Null.Or.InstanceOf<IOException>().Or.InstanceOf<SocketException>(), "end of stream or a reset");
    }

    [TestCaseSource(nameof(CloseKinds))]
    public async Task Abort_gives_an_idle_peer_end_of_stream_or_a_reset_promptly(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind);
        using var cts = PipeIO.Timeout();
        var draining = PipeIO.DrainAsync(pair.Server.Pipe.Input, cts.Token);

        pair.Client.Abort();

        var (received, _) = await draining.Bounded();
        Assert.That(received, Is.Zero);
    }

    [Test]
    public async Task Abort_CloseAsync_and_DisposeAsync_are_idempotent_in_any_order(
        [ValueSource(nameof(CloseKinds))] TransportKind kind,
        [ValueSource(nameof(CloseOrders))] string order)
    {
        // A short linger: the peer below only reads, it never closes.
        var options = new TransportOptions { LingerTimeout = TimeSpan.FromMilliseconds(50) };
        await using var pair = await TransportPair.CreateAsync(kind, clientOptions: options);
        using var cts = PipeIO.Timeout();
        await PipeIO.WriteAsync(pair.Client.Pipe.Output, "bye"u8.ToArray());
        var peerReads = PipeIO.DrainAsync(pair.Server.Pipe.Input, cts.Token);

        foreach (var step in order.Split(','))
        {
            switch (step)
            {
                case "Close":
                    await pair.Client.CloseAsync(cts.Token).Bounded();
                    break;
                case "Abort":
                    pair.Client.Abort();
                    break;
                case "Dispose":
                    await pair.Client.DisposeAsync().Bounded();
                    break;
            }
        }

        var (received, error) = await peerReads.Bounded();
        Assert.That(received, Is.LessThanOrEqualTo(3));
        if (order.StartsWith("Close", StringComparison.Ordinal))
        {
            Assert.That(error, Is.Null, "a graceful close ends the stream cleanly");
            Assert.That(received, Is.EqualTo(3), "a graceful close delivers everything");
        }
    }

    [TestCaseSource(nameof(CloseKinds))]
    public async Task Concurrent_CloseAsync_calls_do_not_throw(TransportKind kind)
    {
        await using var pair = await TransportPair.CreateAsync(kind);
        using var cts = PipeIO.Timeout();
        var peerCloses = Task.Run(async () =>
        {
            await PipeIO.DrainAsync(pair.Server.Pipe.Input, cts.Token);
            await pair.Server.CloseAsync(cts.Token);
        });

        var first = pair.Client.CloseAsync(cts.Token).AsTask();
        var second = pair.Client.CloseAsync(cts.Token).AsTask();

        await Task.WhenAll(first, second).Bounded();
        await peerCloses.Bounded();
    }

    // ---- Linger --------------------------------------------------------------------------------

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    public async Task CloseAsync_against_a_peer_that_never_closes_returns_after_about_the_linger_timeout(TransportKind kind)
    {
        var options = new TransportOptions { LingerTimeout = TimeSpan.FromMilliseconds(200) };
        await using var pair = await TransportPair.CreateAsync(kind, clientOptions: options);
        using var cts = PipeIO.Timeout();
        await PipeIO.WriteAsync(pair.Client.Pipe.Output, "last words"u8.ToArray());

        var stopwatch = Stopwatch.StartNew();
        await pair.Client.CloseAsync(cts.Token).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        stopwatch.Stop();

        Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        Assert.That(await PipeIO.ReadExactlyAsync(pair.Server.Pipe.Input, 10), Is.EqualTo("last words"u8.ToArray()), "the bytes were delivered before the linger ran out");
        var (_, _) = await PipeIO.DrainAsync(pair.Server.Pipe.Input, cts.Token).Bounded();
    }

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    [TestCase(TransportKind.TlsTcp)]
    public async Task CloseAsync_against_a_peer_that_closes_promptly_returns_long_before_the_linger_timeout(TransportKind kind)
    {
        var options = new TransportOptions { LingerTimeout = TimeSpan.FromSeconds(30) };
        await using var pair = await TransportPair.CreateAsync(kind, clientOptions: options);
        using var cts = PipeIO.Timeout();
        await PipeIO.WriteAsync(pair.Client.Pipe.Output, "bye"u8.ToArray());
        var peerCloses = Task.Run(async () =>
        {
            await PipeIO.DrainAsync(pair.Server.Pipe.Input, cts.Token);
            await pair.Server.CloseAsync(cts.Token);
        });

        await pair.Client.CloseAsync(cts.Token).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        await peerCloses.Bounded();
    }

    [Test]
    public async Task CloseAsync_with_zero_linger_returns_without_waiting_for_the_peer_and_still_delivers()
    {
        var options = new TransportOptions { LingerTimeout = TimeSpan.Zero };
        await using var pair = await TransportPair.CreateAsync(TransportKind.Tcp4, clientOptions: options);
        using var cts = PipeIO.Timeout();
        await PipeIO.WritePatternAsync(pair.Client.Pipe.Output, MiB, 16 * 1024, cts.Token);

        var closing = pair.Client.CloseAsync(cts.Token).AsTask();
        var reading = PipeIO.ReadPatternToEndAsync(pair.Server.Pipe.Input, cts.Token);

        await closing.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(await reading.Bounded(), Is.EqualTo(MiB));
    }

    [Test]
    public async Task CloseAsync_cancelled_while_waiting_for_delivery_throws_OperationCanceledException_and_releases_the_connection()
    {
        await using var pair = await TransportPair.CreateAsync(TransportKind.Tcp4, clientOptions: Unthrottled());
        using var cts = PipeIO.Timeout();
        await PipeIO.WritePatternAsync(pair.Client.Pipe.Output, BulkSize, MiB, cts.Token);

        // The peer does not read, so delivery cannot finish before the token fires.
        using var closeCts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.CatchAsync<OperationCanceledException>(() => pair.Client.CloseAsync(closeCts.Token).Bounded());

        var (received, _) = await PipeIO.DrainAsync(pair.Server.Pipe.Input, cts.Token).Bounded();
        Assert.That(received, Is.LessThan(BulkSize), "the rest was discarded when the connection was released");
    }

    // ---- Connect failures ----------------------------------------------------------------------

    [Test]
    public async Task ConnectAsync_to_a_closed_port_throws_SocketException_ConnectionRefused()
    {
        EndPoint endPoint;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            endPoint = probe.LocalEndPoint!;
        }

        var ex = await Assert.ThrowsAsync<SocketException>(() => SocketTransport.ConnectAsync(endPoint).Bounded());

        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused));
    }

    [Test]
    public async Task ConnectAsync_with_TLS_to_a_closed_port_throws_SocketException()
    {
        EndPoint endPoint;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            endPoint = probe.LocalEndPoint!;
        }

        var ex = await Assert.ThrowsAsync<SocketException>(() => SocketTransport.ConnectAsync(endPoint, TestCertificates.ClientOptions()).Bounded());

        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused));
    }

    [Test]
    public async Task ConnectAsync_to_a_missing_unix_path_throws_SocketException_saying_there_is_no_such_file()
    {
        var path = TempPaths.NewSocketPath();

        var ex = await Assert.ThrowsAsync<SocketException>(() => SocketTransport.ConnectAsync(new UnixDomainSocketEndPoint(path)).Bounded());

        Assert.That(ex!.Message, Is.EqualTo($"No Unix socket at '{path}': there is no such file."));
    }

    [Test]
    [Platform("Linux")]
    public async Task ConnectAsync_to_a_unix_path_holding_a_regular_file_says_it_is_not_a_socket()
    {
        var path = TempPaths.NewSocketPath();
        await File.WriteAllTextAsync(path, "x");
        try
        {
            var ex = await Assert.ThrowsAsync<SocketException>(() => SocketTransport.ConnectAsync(new UnixDomainSocketEndPoint(path)).Bounded());

            Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused));
            Assert.That(ex.Message, Is.EqualTo($"No Unix socket at '{path}': the file there is not a socket."));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    [Platform("Linux")]
    public async Task ConnectAsync_to_a_socket_file_nobody_listens_on_says_nothing_listens_there()
    {
        var path = TempPaths.NewSocketPath();
        await StaleSocketFile.LeaveAtAsync(path);
        try
        {
            var ex = await Assert.ThrowsAsync<SocketException>(() => SocketTransport.ConnectAsync(new UnixDomainSocketEndPoint(path)).Bounded());

            Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused));
            Assert.That(ex.Message, Does.StartWith($"Nothing listens on the Unix socket '{path}' (connection refused)"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public async Task ConnectAsync_to_an_unknown_host_throws_SocketException()
    {
        var endPoint = AddressParser.Parse("nonexistent.invalid:80");
        Assert.That(endPoint, Is.TypeOf<DnsEndPoint>());

        await Assert.ThrowsAsync<SocketException>(() => SocketTransport.ConnectAsync(endPoint).Bounded());
    }

    [Test]
    public async Task ConnectAsync_with_an_already_cancelled_token_throws_OperationCanceledException()
    {
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => SocketTransport.ConnectAsync(listener.LocalEndPoint, cancellationToken: new CancellationToken(true)).Bounded());
    }

    [Test]
    public async Task ConnectAsync_cancelled_during_the_TLS_handshake_throws_OperationCanceledException_and_leaves_nothing_open()
    {
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        // The server accepts plainly and never answers the client hello.
        var accept = listener.AcceptAsync().AsTask();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.CatchAsync<OperationCanceledException>(() => SocketTransport.ConnectAsync(listener.LocalEndPoint, TestCertificates.ClientOptions(), cancellationToken: cts.Token).Bounded());

        await using var server = await accept.Bounded();
        using var drain = PipeIO.Timeout();
        var (received, _) = await PipeIO.DrainAsync(server.Pipe.Input, drain.Token).Bounded();
        Assert.That(received, Is.GreaterThan(0), "the client hello arrived before the client gave up and closed");
    }

    [Test]
    public void ConnectAsync_rejects_an_unsupported_endpoint_type()
    {
        Assert.That(async () => await SocketTransport.ConnectAsync(new UnsupportedEndPoint()), Throws.ArgumentException);
    }

    // ---- TLS close -----------------------------------------------------------------------------

    [TestCase(false)]
    [TestCase(true)]
    public async Task CloseAsync_over_TLS_sends_close_notify_before_the_end_of_the_stream(bool unix)
    {
        // TLS 1.2 leaves record types in clear: the peer can see that the last record is an alert,
        // not just that the stream ended (a truncation, to a TLS peer).
        var socketFiles = new SocketFiles();
        try
        {
            using var peer = unix ? RawPeer.ListenUnix(socketFiles) : RawPeer.ListenTcp();
            var connecting = SocketTransport.ConnectAsync(
                peer.EndPoint,
                new SslClientAuthenticationOptions { TargetHost = "localhost", EnabledSslProtocols = SslProtocols.Tls12, RemoteCertificateValidationCallback = TestCertificates.ClientOptions().RemoteCertificateValidationCallback },
                new TransportOptions { LingerTimeout = TimeSpan.FromSeconds(5) }).AsTask();
            var log = new TlsRecordLog(new NetworkStream(await peer.AcceptAsync(), ownsSocket: true));
            await using var server = new SslStream(log);
            await server.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = TestCertificates.ServerCertificate, EnabledSslProtocols = SslProtocols.Tls12 }).Bounded();
            await using var client = await connecting.Bounded();

            await PipeIO.WriteAsync(client.Pipe.Output, "bye"u8.ToArray());
            var closing = client.CloseAsync().AsTask();
            var received = new MemoryStream();
            var buffer = new byte[64];
            int read;
            while ((read = await server.ReadAsync(buffer).AsTask().Bounded()) > 0)
            {
                received.Write(buffer, 0, read);
            }

            Assert.That(received.ToArray(), Is.EqualTo("bye"u8.ToArray()));
            var types = log.RecordTypes();
            Assert.That(types, Does.Contain(TlsRecordLog.ApplicationData));
            Assert.That(types[^1], Is.EqualTo(TlsRecordLog.Alert), $"the last record the peer got is close_notify; record types: {string.Join(", ", types)}");
            await server.DisposeAsync();
            await closing.Bounded();
        }
        finally
        {
            socketFiles.DeleteAll();
        }
    }

    // ---- TLS failures --------------------------------------------------------------------------

    [TestCase(TransportKind.TlsTcp)]
    [TestCase(TransportKind.TlsUnix)]
    public async Task A_client_that_rejects_the_server_certificate_fails_with_AuthenticationException_and_the_server_gets_no_usable_connection(TransportKind kind)
    {
        using var listener = await SocketListener.BindAsync(kind.BindEndPoint()).Bounded();
        var accept = listener.AcceptAsync(TestCertificates.ServerOptions()).AsTask();
        var rejecting = new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            RemoteCertificateValidationCallback = (_, _, _, _) => false,
        };

        await Assert.ThrowsAsync<AuthenticationException>(() => SocketTransport.ConnectAsync(listener.LocalEndPoint, rejecting).Bounded());

        // .NET checks the server certificate only once the handshake is complete on the wire and then just
        // closes (no alert), so the server's handshake may succeed; either it fails, or the connection it
        // returns ends at once. Both must happen promptly.
        TransportConnection? server = null;
        try
        {
            server = await accept.Bounded();
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            return;
        }

        await using (server)
        {
            using var cts = PipeIO.Timeout();
            var (received, _) = await PipeIO.DrainAsync(server.Pipe.Input, cts.Token).Bounded();
            Assert.That(received, Is.Zero, "no application data ever arrives");
        }
    }

    [Test]
    public async Task A_TLS_client_talking_to_a_plain_server_fails_and_nothing_hangs()
    {
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        var accept = listener.AcceptAsync().AsTask();
        var connect = SocketTransport.ConnectAsync(listener.LocalEndPoint, TestCertificates.ClientOptions()).AsTask();
        await using var server = await accept.Bounded();

        // The plain server answers the client hello with garbage.
        await PipeIO.WriteAsync(server.Pipe.Output, "HTTP/1.0 400 Bad Request\r\n\r\n"u8.ToArray());

        var ex = await Assert.CatchAsync<Exception>(() => connect.Bounded());
        Assert.That(ex, Is.InstanceOf<AuthenticationException>().Or.InstanceOf<IOException>(), ex!.ToString());
    }

    // ---- Open ----------------------------------------------------------------------------------

    [Test]
    public void Open_rejects_an_unconnected_socket_with_ArgumentException()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        var ex = Assert.Throws<ArgumentException>(() => SocketTransport.Open(socket));

        Assert.That(ex!.ParamName, Is.EqualTo("socket"));
    }

    [Test]
    public void Open_rejects_a_datagram_socket_with_ArgumentException()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(new IPEndPoint(IPAddress.Loopback, 9));

        var ex = Assert.Throws<ArgumentException>(() => SocketTransport.Open(socket));

        Assert.That(ex!.ParamName, Is.EqualTo("socket"));
    }

    [Test]
    public void Open_rejects_a_non_writable_stream_with_ArgumentException()
    {
        using var stream = new MemoryStream([1, 2, 3], writable: false);

        var ex = Assert.Throws<ArgumentException>(() => SocketTransport.Open(stream));

        Assert.That(ex!.ParamName, Is.EqualTo("stream"));
    }

    [Test]
    public void Open_rejects_a_non_readable_stream_with_ArgumentException()
    {
        using var stream = new WriteOnlyStream();

        var ex = Assert.Throws<ArgumentException>(() => SocketTransport.Open(stream));

        Assert.That(ex!.ParamName, Is.EqualTo("stream"));
    }

    [Test]
    public void Open_rejects_null_arguments()
    {
        Assert.Throws<ArgumentNullException>(() => SocketTransport.Open((Socket)null!));
        Assert.Throws<ArgumentNullException>(() => SocketTransport.Open((Stream)null!));
        Assert.Throws<ArgumentNullException>(() => SocketTransport.Open((IDuplexPipe)null!));
        Assert.That(async () => await SocketTransport.ConnectAsync(null!), Throws.ArgumentNullException);
    }

    [Test]
    public async Task Open_wraps_a_connected_socket_and_takes_ownership_of_it()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var accept = listener.AcceptAsync();
        using var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await raw.ConnectAsync(listener.LocalEndPoint!).Bounded();
        using var accepted = await accept.Bounded();

        var connection = SocketTransport.Open(accepted, new TransportOptions { LingerTimeout = TimeSpan.FromMilliseconds(100) });
        Assert.That(connection.LocalEndPoint, Is.EqualTo(listener.LocalEndPoint));
        Assert.That(connection.RemoteEndPoint, Is.EqualTo(raw.LocalEndPoint));

        await raw.SendAsync("hi"u8.ToArray()).Bounded();
        Assert.That(await PipeIO.ReadExactlyAsync(connection.Pipe.Input, 2), Is.EqualTo("hi"u8.ToArray()));
        await PipeIO.WriteAsync(connection.Pipe.Output, "yo"u8.ToArray());
        await connection.CloseAsync().Bounded();

        var received = new MemoryStream();
        var buffer = new byte[64];
        int read;
        while ((read = await raw.ReceiveAsync(buffer).Bounded()) > 0)
        {
            received.Write(buffer, 0, read);
        }

        Assert.That(received.ToArray(), Is.EqualTo("yo"u8.ToArray()));
        Assert.That(() => accepted.Send(new byte[1]), Throws.InstanceOf<ObjectDisposedException>(), "the connection disposed the socket it owned");
    }

    [Test]
    public async Task Open_wraps_a_duplex_stream_delivers_everything_on_close_and_disposes_the_stream()
    {
        var (stream, peer) = await ConnectNetworkStreamAsync();
        await using var peerConnection = peer;
        using var cts = PipeIO.Timeout();

        var connection = SocketTransport.Open(stream);
        Assert.That(connection.LocalEndPoint, Is.Null, "a stream has no addresses");

        await PipeIO.WritePatternAsync(connection.Pipe.Output, MiB, 16 * 1024, cts.Token);
        var closing = connection.CloseAsync(cts.Token).AsTask();
        Assert.That(await PipeIO.ReadPatternAsync(peer.Pipe.Input, MiB, cts.Token).Bounded(), Is.EqualTo(MiB));
        await peer.CloseAsync(cts.Token).Bounded();
        await closing.Bounded();

        Assert.That(() => stream.Write(new byte[1]), Throws.InstanceOf<ObjectDisposedException>(), "the connection disposed the stream it owned");
    }

    [Test]
    public async Task Open_over_a_NetworkStream_CloseAsync_gives_the_peer_end_of_stream_before_lingering()
    {
        var (stream, peer) = await ConnectNetworkStreamAsync();
        await using var peerConnection = peer;
        await using var connection = SocketTransport.Open(stream, new TransportOptions { LingerTimeout = TimeSpan.FromSeconds(2) });
        using var cts = PipeIO.Timeout();
        await PipeIO.WritePatternAsync(connection.Pipe.Output, 64 * 1024, 16 * 1024, cts.Token);

        var closing = connection.CloseAsync(cts.Token).AsTask();

        // "The sending direction is closed" before the linger: the peer sees the end well within the linger timeout.
        using var soon = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        Assert.That(await PipeIO.ReadPatternToEndAsync(peer.Pipe.Input, soon.Token), Is.EqualTo(64 * 1024));
        await peer.CloseAsync(cts.Token).Bounded();
        await closing.Bounded();
    }

    /// <summary>
    /// Flushes <see cref="BulkSize"/> bytes on the client (its flushes do not wait for the socket, so
    /// nearly all of it is still queued), starts <paramref name="start"/>, and checks that it is
    /// still waiting 300 ms later while the server reads nothing.
    /// </summary>
    private static async Task<Task> StartWithBulkQueuedAsync(TransportPair pair, Func<TransportConnection, Task> start, string expectation, CancellationToken cancellationToken)
    {
        await PipeIO.WritePatternAsync(pair.Client.Pipe.Output, BulkSize, 64 * 1024, cancellationToken);
        var started = start(pair.Client);
        await Task.Delay(300);
        Assert.That(started.IsCompleted, Is.False, expectation);
        return started;
    }

    /// <summary>A server-side <see cref="NetworkStream"/> (owning its socket) and a client connection to it.</summary>
    private static async Task<(NetworkStream Stream, TransportConnection Peer)> ConnectNetworkStreamAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var accept = listener.AcceptAsync();
        var peer = await SocketTransport.ConnectAsync(listener.LocalEndPoint!).Bounded();
        return (new NetworkStream(await accept.Bounded(), ownsSocket: true), peer);
    }

    private sealed class UnsupportedEndPoint : EndPoint
    {
    }

    private sealed class WriteOnlyStream : StreamStub
    {
        public override bool CanRead => false;

        public override bool CanWrite => true;

        public override void Write(byte[] buffer, int offset, int count)
        {
        }
    }
}
