using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>Transient accept errors (EMFILE, ENFILE, ECONNABORTED) are counted and retried with a backoff; they never stop the server.</summary>
public class ServerAcceptErrorSpecs
{
    [Test]
    public async Task Transient_accept_errors_are_counted_and_retried_and_the_next_client_is_served()
    {
        var failures = new Queue<SocketException>([
            new((int)SocketError.TooManyOpenSockets), new(23 /* ENFILE */), new((int)SocketError.ConnectionAborted)]);
        await using var server = new PipeProtocolServer<string>(Echo);
        var inner = server.AcceptSocket;
        server.AcceptSocket = (listener, token) =>
        {
            lock (failures)
            {
                if (failures.TryDequeue(out var failure))
                {
                    return ValueTask.FromException<Socket>(failure);
                }
            }

            return inner(listener, token);
        };
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        using var client = await ConnectAsync(endPoint);

        Assert.That(await EchoAsync(client, "served"), Is.EqualTo("served"));
        Assert.That(server.AcceptErrors, Is.EqualTo(3));
        using var another = await ConnectAsync(endPoint);
        Assert.That(await EchoAsync(another, "and the next"), Is.EqualTo("and the next"));
    }

    [Test]
    public async Task An_accept_error_that_is_not_transient_stops_that_endpoint_only()
    {
        var files = new SocketFiles();
        try
        {
            await using var server = new PipeProtocolServer<string>(Echo);
            var inner = server.AcceptSocket;
            server.AcceptSocket = (listener, token) => listener.LocalEndPoint is UnixDomainSocketEndPoint
                ? ValueTask.FromException<Socket>(new SocketException((int)SocketError.InvalidArgument))
                : inner(listener, token);
            var brokenPath = files.NewPath();
            await server.ListenAsync("unix:" + brokenPath).Bounded();
            var healthy = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

            using var client = await ConnectAsync(healthy);

            Assert.That(await EchoAsync(client, "still here"), Is.EqualTo("still here"));
            await WaitUntilAsync(() => !File.Exists(brokenPath), "the broken endpoint's listener is closed");
        }
        finally
        {
            files.DeleteAll();
        }
    }
}
