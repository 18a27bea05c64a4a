using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

/// <summary>
/// The transport under descriptor passing (<see cref="TransportOptions.AllowDescriptorPassing"/>):
/// a Unix socket whose every receive collects the descriptors arriving with the bytes, each placed
/// at the last byte of the read that brought it; descriptors attached to an outbound byte leave
/// with that byte alone; held descriptors are closed when the connection is released; and every
/// other kind of connection refuses the option with <see cref="NotSupportedException"/>.
/// </summary>
[NonParallelizable]
public class DescriptorPassingSpecs
{
    private static readonly TransportOptions Passing = new() { AllowDescriptorPassing = true, LingerTimeout = TimeSpan.Zero };

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [Test]
    public async Task A_descriptor_attached_to_an_outbound_byte_arrives_placed_at_that_byte_and_the_bytes_arrive_unchanged()
    {
        var (client, server) = await ConnectPairAsync();
        await using var _ = client;
        await using var __ = server;
        using var pipe = FileDescriptors.NewPipe();
        var data = Enumerable.Range(0, 256 * 1024).Select(i => PipeIO.PatternAt(i)).ToArray();
        const int At = 100_003;

        var attached = OutboundDescriptors.Reference(new SafeHandle[] { pipe.ClientSafePipeHandle });
        attached.Offset = At;
        client.Attach(attached);
        pipe.DisposeLocalCopyOfClientHandle();
        var writing = PipeIO.WriteAsync(client.Pipe.Output, data);
        var received = await PipeIO.ReadExactlyAsync(server.Pipe.Input, data.Length);
        await writing.Bounded();

        Assert.That(received, Is.EqualTo(data));
        Assert.That(server.TakeDescriptors(0, At), Is.Empty, "nothing before the byte it was attached to");
        var taken = server.TakeDescriptors(At, At + 1);
        Assert.That(taken, Has.Length.EqualTo(1));
        FileDescriptors.WriteAndClose(taken[0], "through the received end");
        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.EqualTo("through the received end"));
    }

    [Test]
    public async Task A_descriptor_sent_with_bytes_a_read_joins_to_earlier_ones_is_placed_at_the_last_byte_of_that_read()
    {
        var (peer, server) = await ConnectRawPeerAsync();
        await using var _ = server;
        using var __ = peer;
        using var pipe = FileDescriptors.NewPipe();

        await peer.SendAsync("abc"u8.ToArray());
        Assert.That(UnixDescriptorInterop.SendWithDescriptors(peer.SafeHandle, (byte)'d', [(int)pipe.ClientSafePipeHandle.DangerousGetHandle()]), Is.True);
        await peer.SendAsync("ef"u8.ToArray());
        pipe.DisposeLocalCopyOfClientHandle();
        await Task.Delay(50); // all three sends are queued before the first read

        Assert.That(await PipeIO.ReadExactlyAsync(server.Pipe.Input, 6), Is.EqualTo("abcdef"u8.ToArray()));
        Assert.That(server.TakeDescriptors(0, 3), Is.Empty);
        Assert.That(server.TakeDescriptors(3, 4), Has.Length.EqualTo(1).And.All.Not.Null);
    }

    [Test]
    public async Task Releasing_the_connection_closes_the_descriptors_it_received_and_nobody_took()
    {
        var (peer, server) = await ConnectRawPeerAsync();
        using var _ = peer;
        using var pipe = FileDescriptors.NewPipe();

        Assert.That(UnixDescriptorInterop.SendWithDescriptors(peer.SafeHandle, (byte)'x', [(int)pipe.ClientSafePipeHandle.DangerousGetHandle()]), Is.True);
        pipe.DisposeLocalCopyOfClientHandle();
        await PipeIO.ReadExactlyAsync(server.Pipe.Input, 1);
        Assert.That(server.HeldDescriptors, Is.EqualTo(1));

        server.Abort();
        Assert.That(server.HeldDescriptors, Is.Zero);
        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.Empty, "no copy of the write end is left open");
    }

    [Test]
    public async Task Descriptors_attached_past_what_was_ever_sent_are_released_with_the_connection()
    {
        var (client, server) = await ConnectPairAsync();
        await using var _ = server;
        using var pipe = FileDescriptors.NewPipe();

        var attached = OutboundDescriptors.Reference(new SafeHandle[] { pipe.ClientSafePipeHandle });
        attached.Offset = 1_000;
        client.Attach(attached);
        pipe.DisposeLocalCopyOfClientHandle();
        client.Abort();

        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.Empty, "the handle was released, so disposing it closed the descriptor");
    }

    [Test]
    public async Task Every_connection_but_a_plain_Unix_socket_refuses_descriptor_passing()
    {
        using var tcpListener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        tcpListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        tcpListener.Listen();

        Assert.That(async () => await SocketTransport.ConnectAsync(tcpListener.LocalEndPoint!, options: Passing), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("TCP"));
        Assert.That(async () => await SocketTransport.ConnectAsync(_socketFiles.NewEndPoint(), new System.Net.Security.SslClientAuthenticationOptions(), Passing), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("TLS"));
        Assert.That(() => SocketTransport.Open(new MemoryStream(), Passing), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("stream"));
        Assert.That(() => SocketTransport.Open(DuplexPipePair.Create().Left, Passing), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("pipe"));
        using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await tcp.ConnectAsync(tcpListener.LocalEndPoint!).Bounded();
        Assert.That(() => SocketTransport.Open(tcp, Passing), Throws.InstanceOf<NotSupportedException>());
    }

    [Test]
    public void Sending_no_descriptors_or_too_many_is_refused_before_anything_is_referenced()
    {
        Assert.That(() => OutboundDescriptors.Reference([]), Throws.ArgumentException);
        using var pipe = FileDescriptors.NewPipe();
        var many = Enumerable.Repeat<SafeHandle>(pipe.ClientSafePipeHandle, UnixDescriptorInterop.MaximumDescriptors + 1).ToArray();
        Assert.That(() => OutboundDescriptors.Reference(many), Throws.ArgumentException);
    }

    private async Task<(UnixDescriptorConnection Client, UnixDescriptorConnection Server)> ConnectPairAsync()
    {
        var endPoint = _socketFiles.NewEndPoint();
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(endPoint);
        listener.Listen();
        var accepting = listener.AcceptAsync();
        var client = (UnixDescriptorConnection)await SocketTransport.ConnectAsync(endPoint, options: Passing).Bounded();
        var server = (UnixDescriptorConnection)SocketTransport.Open(await accepting.Bounded(), Passing);
        return (client, server);
    }

    private async Task<(Socket Peer, UnixDescriptorConnection Server)> ConnectRawPeerAsync()
    {
        var endPoint = _socketFiles.NewEndPoint();
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(endPoint);
        listener.Listen();
        var peer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await peer.ConnectAsync(endPoint).Bounded();
        var server = (UnixDescriptorConnection)SocketTransport.Open(await listener.AcceptAsync().Bounded(), Passing);
        return (peer, server);
    }
}
