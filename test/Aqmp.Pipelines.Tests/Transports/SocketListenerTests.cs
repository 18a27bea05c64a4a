using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Testing;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

public class SocketListenerTests
{
    [Test]
    public async Task BindAsync_to_TCP_port_0_reports_the_port_the_system_chose()
    {
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        var bound = (IPEndPoint)listener.LocalEndPoint;
        Assert.That(bound.Address, Is.EqualTo(IPAddress.Loopback));
        Assert.That(bound.Port, Is.Not.Zero);
        Assert.That(listener.ToString(), Does.Contain(bound.ToString()));
    }

    [Test]
    public async Task BindAsync_to_a_host_name_binds_its_first_address_and_a_client_connects_by_name()
    {
        using var listener = await SocketListener.BindAsync(new DnsEndPoint("localhost", 0)).Bounded();
        var bound = (IPEndPoint)listener.LocalEndPoint;
        Assert.That(IPAddress.IsLoopback(bound.Address), Is.True);

        var accept = listener.AcceptAsync().AsTask();
        await using var client = await SocketTransport.ConnectAsync(new DnsEndPoint("localhost", bound.Port)).Bounded();
        await using var server = await accept.Bounded();

        await PipeIO.WriteAsync(client.Pipe.Output, [1, 2, 3]);
        Assert.That(await PipeIO.ReadExactlyAsync(server.Pipe.Input, 3), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public async Task BindAsync_to_a_TCP_port_in_use_throws_SocketException_AddressAlreadyInUse()
    {
        using var first = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        var ex = await Assert.ThrowsAsync<SocketException>(() => SocketListener.BindAsync(first.LocalEndPoint).Bounded());

        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
    }

    [Test]
    public async Task BindAsync_to_a_TCP_port_held_by_a_plain_listening_socket_throws_AddressAlreadyInUse()
    {
        using var other = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        other.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        other.Listen();

        var ex = await Assert.ThrowsAsync<SocketException>(() => SocketListener.BindAsync(other.LocalEndPoint!).Bounded());

        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
    }

    [Test]
    public async Task Dispose_removes_the_unix_socket_file()
    {
        var path = TempPaths.NewSocketPath();
        var listener = await SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        Assert.That(File.Exists(path), Is.True, "the socket file exists while listening");
        Assert.That(listener.LocalEndPoint.ToString(), Is.EqualTo(path));

        listener.Dispose();

        Assert.That(File.Exists(path), Is.False, "the socket file is removed on Dispose");
    }

    [Test]
    public async Task BindAsync_to_a_unix_path_holding_a_regular_file_fails_naming_the_path_and_leaves_the_file_intact()
    {
        var path = TempPaths.NewSocketPath();
        await File.WriteAllTextAsync(path, "left over");
        try
        {
            var ex = await Assert.ThrowsAsync<SocketException>(() => SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded());

            Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
            if (OperatingSystem.IsLinux())
            {
                Assert.That(ex.Message, Does.Contain(path).And.Contain("not a socket"));
            }

            Assert.That(await File.ReadAllTextAsync(path), Is.EqualTo("left over"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public async Task BindAsync_to_a_unix_path_holding_a_stale_socket_file_fails_with_address_in_use_and_leaves_the_file_there()
    {
        var path = TempPaths.NewSocketPath();
        await StaleSocketFile.LeaveAtAsync(path);
        try
        {
            var ex = await Assert.ThrowsAsync<SocketException>(() => SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded());

            Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
            if (OperatingSystem.IsLinux())
            {
                Assert.That(ex.Message, Does.Contain(path).And.Contain("in use"));
            }

            Assert.That(File.Exists(path), Is.True, "the stale socket file is still there");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    [Platform("Linux")]
    public async Task BindAsync_replacing_stale_sockets_removes_a_socket_file_nobody_listens_on_and_listens_there()
    {
        var path = TempPaths.NewSocketPath();
        await StaleSocketFile.LeaveAtAsync(path);

        using var listener = await SocketListener.BindAsync(new UnixDomainSocketEndPoint(path), backlog: 1, replaceStaleSocket: true).Bounded();

        var accept = listener.AcceptAsync().AsTask();
        await using var client = await SocketTransport.ConnectAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        await using var server = await accept.Bounded();
        await PipeIO.WriteAsync(client.Pipe.Output, [9]);
        Assert.That(await PipeIO.ReadExactlyAsync(server.Pipe.Input, 1), Is.EqualTo(new byte[] { 9 }));
    }

    [Test]
    [Platform("Linux")]
    public async Task BindAsync_replacing_stale_sockets_leaves_a_live_listeners_socket_and_says_a_server_is_listening()
    {
        var path = TempPaths.NewSocketPath();
        using var live = await SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded();

        var ex = await Assert.ThrowsAsync<SocketException>(() => SocketListener.BindAsync(new UnixDomainSocketEndPoint(path), backlog: 1, replaceStaleSocket: true).Bounded());

        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
        Assert.That(ex.Message, Does.Contain(path).And.Contain("a server is listening on it"));
        var accept = live.AcceptAsync().AsTask();
        await using var client = await SocketTransport.ConnectAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        await using var server = await accept.Bounded();
        Assert.That(server, Is.Not.Null, "the live listener still accepts on its file");
    }

    [Test]
    [Platform("Linux")]
    public async Task BindAsync_replacing_stale_sockets_leaves_a_regular_file_as_it_was()
    {
        var path = TempPaths.NewSocketPath();
        await File.WriteAllTextAsync(path, "not a socket");
        try
        {
            var ex = await Assert.ThrowsAsync<SocketException>(() => SocketListener.BindAsync(new UnixDomainSocketEndPoint(path), backlog: 1, replaceStaleSocket: true).Bounded());

            Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
            Assert.That(ex.Message, Does.Contain("not a socket"));
            Assert.That(await File.ReadAllTextAsync(path), Is.EqualTo("not a socket"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    [Platform("Linux")]
    public async Task Disposing_a_listener_whose_file_was_replaced_leaves_the_new_listeners_file_and_it_keeps_accepting()
    {
        var path = TempPaths.NewSocketPath();
        var first = await SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        File.Delete(path);
        using var second = await SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded();

        first.Dispose();

        Assert.That(File.Exists(path), Is.True, "the second listener's socket file survives the first listener's disposal");
        var accept = second.AcceptAsync().AsTask();
        await using var client = await SocketTransport.ConnectAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        await using var server = await accept.Bounded();
        await PipeIO.WriteAsync(client.Pipe.Output, [7]);
        Assert.That(await PipeIO.ReadExactlyAsync(server.Pipe.Input, 1), Is.EqualTo(new byte[] { 7 }));

        second.Dispose();
        Assert.That(File.Exists(path), Is.False, "the second listener removes its own file");
    }

    [Test]
    public async Task BindAsync_to_the_unix_path_of_a_live_listener_throws_AddressAlreadyInUse()
    {
        var path = TempPaths.NewSocketPath();
        using var first = await SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded();

        var ex = await Assert.ThrowsAsync<SocketException>(() => SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded());

        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.AddressAlreadyInUse));
        Assert.That(File.Exists(path), Is.True, "the live listener's file is not removed by the failed bind");
    }

    [Test]
    public async Task Dispose_is_idempotent()
    {
        var path = TempPaths.NewSocketPath();
        var listener = await SocketListener.BindAsync(new UnixDomainSocketEndPoint(path)).Bounded();

        listener.Dispose();
        Assert.DoesNotThrow(listener.Dispose);
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public async Task Dispose_called_on_two_threads_at_once_returns_on_each_only_once_the_socket_file_is_gone()
    {
        // A server stopping while its accept loop also disposes the listener: whichever call
        // returns first, the process may exit right after it, so the file must be gone by then.
        var leftBehind = 0;
        for (var round = 0; round < 200; round++)
        {
            var path = TempPaths.NewSocketPath();
            var listener = await SocketListener.BindAsync(new UnixDomainSocketEndPoint(path));
            using var start = new Barrier(2);
            var calls = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
            {
                start.SignalAndWait();
                listener.Dispose();
                return File.Exists(path);
            })).ToArray();
            leftBehind += (await Task.WhenAll(calls)).Count(exists => exists);
        }

        Assert.That(leftBehind, Is.Zero, "no Dispose call returned while the file was still there");
    }

    [Test]
    public async Task AcceptAsync_after_Dispose_throws_ObjectDisposedException()
    {
        var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        listener.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => listener.AcceptAsync().Bounded());
    }

    [TestCase("tcp")]
    [TestCase("unix")]
    public async Task Dispose_while_AcceptAsync_waits_ends_the_accept_with_OperationAborted(string transport)
    {
        EndPoint endPoint = transport == "unix" ? new UnixDomainSocketEndPoint(TempPaths.NewSocketPath()) : new IPEndPoint(IPAddress.Loopback, 0);
        var listener = await SocketListener.BindAsync(endPoint).Bounded();
        var accept = listener.AcceptAsync().AsTask();
        await Task.Delay(50);
        Assert.That(accept.IsCompleted, Is.False, "nobody connected yet");

        listener.Dispose();

        var ex = await Assert.ThrowsAsync<SocketException>(() => accept.Bounded());
        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.OperationAborted));
    }

    [Test]
    public async Task AcceptAsync_cancellation_throws_OperationCanceledException_and_the_listener_keeps_working()
    {
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var ex = await Assert.CatchAsync<OperationCanceledException>(() => listener.AcceptAsync(cancellationToken: cts.Token).Bounded());
        Assert.That(ex!.CancellationToken, Is.EqualTo(cts.Token));

        var accept = listener.AcceptAsync().AsTask();
        await using var client = await SocketTransport.ConnectAsync(listener.LocalEndPoint).Bounded();
        await using var server = await accept.Bounded();
        Assert.That(server.RemoteEndPoint, Is.EqualTo(client.LocalEndPoint));
    }

    [Test]
    public async Task AcceptAsync_with_an_already_cancelled_token_throws_OperationCanceledException()
    {
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        await Assert.CatchAsync<OperationCanceledException>(() => listener.AcceptAsync(cancellationToken: new CancellationToken(true)).Bounded());
    }

    [Test]
    public async Task AcceptAsync_cancelled_during_the_TLS_handshake_throws_OperationCanceledException_and_closes_the_socket()
    {
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var cts = new CancellationTokenSource();
        var accept = listener.AcceptAsync(TestCertificates.ServerOptions(), cancellationToken: cts.Token).AsTask();

        // A raw client that connects but never says a word of TLS.
        using var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await raw.ConnectAsync(listener.LocalEndPoint).Bounded();
        await Task.Delay(50);
        Assert.That(accept.IsCompleted, Is.False, "the server waits for the client hello");
        cts.Cancel();

        await Assert.CatchAsync<OperationCanceledException>(() => accept.Bounded());
        var buffer = new byte[16];
        var read = await raw.ReceiveAsync(buffer).Bounded();
        Assert.That(read, Is.Zero, "the accepted socket was closed");
    }
}
