using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// A peer that sends its last messages and then resets the connection (as QEMU does when it exits
/// with input unread): every message that arrived before the reset is delivered, then the reset is
/// the root cause. Nothing received is thrown away.
/// </summary>
public class PeerResetTests
{
    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [TestCase(TransportKind.Tcp4)]
    [TestCase(TransportKind.Unix)]
    public async Task Messages_sent_just_before_a_reset_are_delivered_and_the_reset_is_the_root_cause(TransportKind kind)
    {
        using var peer = kind == TransportKind.Unix ? RawPeer.ListenUnix(_socketFiles) : RawPeer.ListenTcp();
        await using var client = new LineProtocol();
        await client.ConnectAsync(peer.EndPoint).Bounded();
        using var accepted = await peer.AcceptAsync();

        for (var round = 0; round < 20; round++)
        {
            // Unread input at the peer makes closing it a reset rather than a clean close.
            await client.SendLineAsync("unread by the peer").Bounded();
        }

        await Task.Delay(50);
        await accepted.SendAsync(Encoding.UTF8.GetBytes("last words\nreally the last\n"));
        accepted.LingerState = new LingerOption(true, 0);
        accepted.Close();

        Assert.That(await client.NextLineAsync(), Is.EqualTo("last words"));
        Assert.That(await client.NextLineAsync(), Is.EqualTo("really the last"));
        var error = await Assert.CatchAsync<Exception>(() => WaitThenDisconnectAsync(client));
        Assert.That(error, Is.InstanceOf<IOException>().Or.InstanceOf<SocketException>(), "the reset, not a clean end of stream");
        Assert.That(error, Is.Not.InstanceOf<EndOfStreamException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    private static async Task WaitThenDisconnectAsync(LineProtocol client)
    {
        await client.UntilRunstateAsync(Runstate.Disconnecting);
        await client.DisconnectAsync().Bounded();
    }
}
