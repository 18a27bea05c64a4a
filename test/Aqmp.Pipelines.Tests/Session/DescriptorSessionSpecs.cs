using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// File descriptors that travel with messages between two sessions over a Unix socket
/// (<see cref="PipeProtocolOptions.AllowDescriptorPassing"/>): each message's descriptors are
/// taken by the handler of that message, descriptors nobody takes are closed, and the sessions
/// that cannot pass descriptors refuse at once with <see cref="NotSupportedException"/>.
/// </summary>
[NonParallelizable]
public class DescriptorSessionSpecs
{
    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [Test]
    public async Task A_pipe_passed_with_a_message_arrives_with_it_and_what_the_receiver_writes_through_it_reaches_the_sender()
    {
        await using var server = new DescriptorLineProtocol();
        await using var client = new DescriptorLineProtocol();
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());
        using var pipe = FileDescriptors.NewPipe();

        await client.SendLineAsync("before").Bounded();
        await client.SendLineAsync("take this pipe", [pipe.ClientSafePipeHandle]).Bounded();
        pipe.DisposeLocalCopyOfClientHandle();
        await client.SendLineAsync("after").Bounded();

        var before = await server.NextAsync();
        var carrying = await server.NextAsync();
        var after = await server.NextAsync();
        Assert.That(before.Descriptors, Is.Empty, "the message before has none");
        Assert.That(carrying.Line, Is.EqualTo("take this pipe"));
        Assert.That(carrying.Descriptors, Has.Length.EqualTo(1));
        Assert.That(after.Descriptors, Is.Empty, "the message after has none");

        FileDescriptors.WriteAndClose(carrying.Descriptors[0], "written by the receiver");
        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.EqualTo("written by the receiver"));
    }

    [Test]
    public async Task Several_descriptors_with_one_message_arrive_in_order_and_each_message_gets_only_its_own()
    {
        await using var server = new DescriptorLineProtocol();
        await using var client = new DescriptorLineProtocol();
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());
        var pipes = Enumerable.Range(0, 4).Select(_ => FileDescriptors.NewPipe()).ToArray();
        try
        {
            await client.SendLineAsync("three", [pipes[0].ClientSafePipeHandle, pipes[1].ClientSafePipeHandle, pipes[2].ClientSafePipeHandle]).Bounded();
            await client.SendLineAsync("one", [pipes[3].ClientSafePipeHandle]).Bounded();
            foreach (var pipe in pipes)
            {
                pipe.DisposeLocalCopyOfClientHandle();
            }

            var three = await server.NextAsync();
            var one = await server.NextAsync();
            Assert.That(three.Descriptors, Has.Length.EqualTo(3));
            Assert.That(one.Descriptors, Has.Length.EqualTo(1));
            for (var i = 0; i < 3; i++)
            {
                FileDescriptors.WriteAndClose(three.Descriptors[i], $"pipe {i}");
            }

            FileDescriptors.WriteAndClose(one.Descriptors[0], "pipe 3");
            for (var i = 0; i < 4; i++)
            {
                Assert.That(await FileDescriptors.ReadToEndAsync(pipes[i]), Is.EqualTo($"pipe {i}"), $"pipe {i} reached its own receiver");
            }
        }
        finally
        {
            foreach (var pipe in pipes)
            {
                pipe.Dispose();
            }
        }
    }

    [Test]
    public async Task Descriptors_the_handler_does_not_take_are_closed_when_it_returns()
    {
        await using var server = new DescriptorLineProtocol { TakesDescriptors = false };
        await using var client = new DescriptorLineProtocol();
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());
        using var pipe = FileDescriptors.NewPipe();

        await client.SendLineAsync("ignored", [pipe.ClientSafePipeHandle]).Bounded();
        pipe.DisposeLocalCopyOfClientHandle();
        var line = await server.NextAsync();

        Assert.That(line.Descriptors, Is.Empty);
        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.Empty, "the end of the pipe: no copy of its write end is left open");
    }

    [Test]
    public async Task TakeDescriptors_a_second_time_for_the_same_message_returns_none()
    {
        await using var server = new DescriptorLineProtocol();
        int? second = null;
        server.OnLine = (_, descriptors, context) =>
        {
            second = context.TakeDescriptors().Length;
            foreach (var descriptor in descriptors)
            {
                descriptor.Dispose();
            }

            return context.SendAsync("done");
        };
        await using var client = new DescriptorLineProtocol();
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());
        using var pipe = FileDescriptors.NewPipe();

        await client.SendLineAsync("x", [pipe.ClientSafePipeHandle]).Bounded();
        Assert.That((await client.NextAsync()).Line, Is.EqualTo("done"));
        Assert.That(second, Is.EqualTo(0));
    }

    [Test]
    public async Task A_handler_replies_with_a_descriptor_through_its_context()
    {
        await using var server = new DescriptorLineProtocol();
        using var pipe = FileDescriptors.NewPipe();
        server.OnLine = async (_, _, context) => await context.SendWithDescriptorsAsync("here", new SafeHandle[] { pipe.ClientSafePipeHandle });
        await using var client = new DescriptorLineProtocol();
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());

        await client.SendLineAsync("give me a pipe").Bounded();
        var reply = await client.NextAsync();
        pipe.DisposeLocalCopyOfClientHandle();

        Assert.That(reply.Descriptors, Has.Length.EqualTo(1));
        FileDescriptors.WriteAndClose(reply.Descriptors[0], "back");
        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.EqualTo("back"));
    }

    [Test]
    public async Task A_send_cancelled_before_it_is_framed_sends_nothing_and_keeps_no_reference_to_the_handles()
    {
        await using var server = new DescriptorLineProtocol();
        await using var client = new DescriptorLineProtocol();
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());
        using var pipe = FileDescriptors.NewPipe();

        Assert.That(
            async () => await client.SendLineAsync("never", [pipe.ClientSafePipeHandle], new CancellationToken(canceled: true)),
            Throws.InstanceOf<OperationCanceledException>());
        pipe.DisposeLocalCopyOfClientHandle();
        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.Empty, "the handle was released: its descriptor closed when disposed");

        await client.SendLineAsync("next").Bounded();
        Assert.That((await server.NextAsync()).Line, Is.EqualTo("next"), "nothing of the cancelled message was sent");
    }

    [Test]
    public async Task Descriptors_of_a_message_the_peer_cut_short_by_vanishing_are_closed_and_the_session_ends()
    {
        await using var server = new DescriptorLineProtocol();
        var bound = await server.StartServerAsync(_socketFiles.NewEndPoint()).Bounded();
        var accept = server.AcceptAsync();
        using var pipe = FileDescriptors.NewPipe();
        using (var peer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await peer.ConnectAsync(bound).Bounded();
            await accept.Bounded();
            Assert.That(UnixDescriptorInterop.SendWithDescriptors(peer.SafeHandle, (byte)'p', [(int)pipe.ClientSafePipeHandle.DangerousGetHandle()]), Is.True);
            await peer.SendAsync("artial message, never ended"u8.ToArray());
        }

        pipe.DisposeLocalCopyOfClientHandle();
        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.Empty, "the session closed the descriptor of the cut message");
        await server.UntilRunstateAsync(Runstate.Disconnecting);
        Assert.That(async () => await server.DisconnectAsync(), Throws.Exception, "the session ended with an error: the message was cut short");
    }

    [Test]
    public async Task Descriptors_sent_to_a_peer_that_closed_are_released_when_the_session_ends()
    {
        await using var client = new DescriptorLineProtocol();
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var endPoint = _socketFiles.NewEndPoint();
        listener.Bind(endPoint);
        listener.Listen();
        await client.ConnectAsync(endPoint).Bounded();
        using (var accepted = await listener.AcceptAsync().Bounded())
        {
            listener.Dispose();
        }

        using var pipe = FileDescriptors.NewPipe();
        try
        {
            for (var i = 0; i < 50 && client.Runstate == Runstate.Running; i++)
            {
                await client.SendLineAsync("into the void", [pipe.ClientSafePipeHandle]);
                await Task.Delay(5);
            }
        }
        catch (Exception ex) when (ex is StateException or OperationCanceledException or IOException)
        {
            // The session noticed the peer is gone.
        }

        try
        {
            await client.DisconnectAsync().Bounded();
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            // The error that ended the session: the peer went away.
        }

        pipe.DisposeLocalCopyOfClientHandle();
        Assert.That(await FileDescriptors.ReadToEndAsync(pipe), Is.Empty, "no reference to the handle was left behind");
    }

    [Test]
    public async Task Over_ten_thousand_passes_no_descriptor_leaks()
    {
        await using var server = new DescriptorLineProtocol();
        var received = 0;
        server.OnLine = (_, descriptors, context) =>
        {
            foreach (var descriptor in descriptors)
            {
                descriptor.Dispose();
            }

            // Every other message leaves its descriptor for the session to close.
            server.TakesDescriptors = !server.TakesDescriptors;
            return ++received % 100 == 0 ? context.SendAsync("batch") : ValueTask.CompletedTask;
        };
        await using var client = new DescriptorLineProtocol();
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());

        await PassAsync(client, 2);
        var baseline = FileDescriptors.OpenCount();
        await PassAsync(client, 98);
        await PassAsync(client, 10_000);

        Assert.That(await FileDescriptors.SettleAtOrBelowAsync(baseline), Is.LessThanOrEqualTo(baseline), "the process holds no more descriptors than before the passes");

        static async Task PassAsync(DescriptorLineProtocol client, int count)
        {
            for (var sent = 0; sent < count;)
            {
                var batch = Math.Min(100, count - sent);
                for (var i = 0; i < batch; i++, sent++)
                {
                    using var pipe = FileDescriptors.NewPipe();
                    await client.SendLineAsync("pass", [pipe.ClientSafePipeHandle]);
                }

                if (batch == 100)
                {
                    Assert.That((await client.NextAsync()).Line, Is.EqualTo("batch"));
                }
            }
        }
    }

    [Test]
    public void A_session_that_passes_descriptors_refuses_TCP_TLS_streams_and_pipes_at_once()
    {
        var session = new DescriptorLineProtocol();
        Assert.That(() => session.ConnectAsync(new IPEndPoint(IPAddress.Loopback, 1)), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("Unix-domain"));
        Assert.That(() => session.StartServerAsync(new IPEndPoint(IPAddress.Loopback, 0)), Throws.InstanceOf<NotSupportedException>());
        Assert.That(() => session.ConnectAsync(new UnixDomainSocketEndPoint("/nonexistent"), new System.Net.Security.SslClientAuthenticationOptions()), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("TLS"));
        Assert.That(() => session.OpenAsync(new MemoryStream()), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("stream"));
        Assert.That(() => session.OpenAsync(DuplexPipePair.Create().Left), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("pipe"));
        using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Assert.That(() => session.OpenAsync(tcp), Throws.InstanceOf<ArgumentException>().Or.InstanceOf<NotSupportedException>());
        Assert.That(session.Runstate, Is.EqualTo(Runstate.Idle), "nothing was attempted");
    }

    [Test]
    public async Task A_session_that_does_not_pass_descriptors_refuses_to_send_or_take_them()
    {
        var options = new PipeProtocolOptions { LingerTimeout = TimeSpan.Zero };
        await using var server = new DescriptorLineProtocol(options);
        Exception? takeError = null;
        server.TakesDescriptors = false;
        server.OnLine = (_, _, context) =>
        {
            takeError = Catch(() => context.TakeDescriptors());
            return context.SendAsync("checked");
        };
        await using var client = new DescriptorLineProtocol(options) { TakesDescriptors = false };
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());
        using var pipe = FileDescriptors.NewPipe();

        Assert.That(async () => await client.SendLineAsync("x", [pipe.ClientSafePipeHandle]), Throws.InstanceOf<NotSupportedException>());
        await client.SendLineAsync("plain").Bounded();
        Assert.That((await client.NextAsync()).Line, Is.EqualTo("checked"));
        Assert.That(takeError, Is.InstanceOf<NotSupportedException>());
    }

    [Test]
    public async Task Sending_no_descriptors_or_a_closed_handle_is_refused_and_the_session_goes_on()
    {
        await using var server = new DescriptorLineProtocol();
        await using var client = new DescriptorLineProtocol();
        await SessionConnector.ListenAndConnectAsync(server, client, _socketFiles.NewEndPoint());
        using var closed = FileDescriptors.NewPipe();
        var handle = closed.ClientSafePipeHandle;
        handle.Dispose();

        Assert.That(async () => await client.SendLineAsync("none", []), Throws.ArgumentException);
        Assert.That(async () => await client.SendLineAsync("closed", [handle]), Throws.InstanceOf<ObjectDisposedException>());
        await client.SendLineAsync("still running").Bounded();
        Assert.That((await server.NextAsync()).Line, Is.EqualTo("still running"));
    }

    private static Exception? Catch(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }
}
