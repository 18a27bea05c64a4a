using System.IO.Pipelines;
using System.Net;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

public class SmokeTests
{
    [Test]
    public async Task Tcp_echo_round_trip()
    {
        await using var server = new LineProtocol(name: "server");
        await using var client = new LineProtocol(name: "client");
        var bound = await server.StartServerAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var accept = server.AcceptAsync();
        await client.ConnectAsync(bound);
        await accept;
        await client.SendLineAsync("hello");
        Assert.That(await server.NextLineAsync(), Is.EqualTo("hello"));
        await server.SendLineAsync("world");
        Assert.That(await client.NextLineAsync(), Is.EqualTo("world"));
        await client.DisconnectAsync();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        await Assert.ThrowsAsync<EndOfStreamException>(() => server.DisconnectAsync());
        Assert.That(server.Runstate, Is.EqualTo(Runstate.Idle));
    }
}
