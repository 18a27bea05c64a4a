using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Samples.Echo;

/// <summary>
/// The server mode: one <see cref="PipeProtocolServer{TMessage}"/> of <see cref="EchoServer"/>
/// sessions on TCP and a Unix socket, and many <see cref="EchoClient"/>s at once, half on each.
/// </summary>
internal static class ManyClients
{
    public static async Task RunAsync(int clients, CancellationToken cancellationToken)
    {
        var unixPath = Path.Combine(Path.GetTempPath(), $"aqmp-echo-many-{Environment.ProcessId}.sock");
        await using var server = new PipeProtocolServer<string>(
            _ => new EchoServer(),
            new PipeProtocolServerOptions { MaximumSessions = clients, HandshakeTimeout = TimeSpan.FromSeconds(5), IdleTimeout = TimeSpan.FromSeconds(30) });
        var ended = 0;
        server.SessionEnded += (_, e) => Interlocked.Increment(ref ended);
        var tcp = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0), cancellationToken: cancellationToken);
        var unix = await server.ListenAsync(new UnixDomainSocketEndPoint(unixPath), cancellationToken: cancellationToken);
        Console.WriteLine($"server: listening on {AddressParser.Format(tcp)} and {AddressParser.Format(unix)}");

        var clock = Stopwatch.StartNew();
        var replies = await Task.WhenAll(Enumerable.Range(0, clients).Select(async i =>
        {
            await using var client = new EchoClient();
            await client.ConnectAsync(i % 2 == 0 ? tcp : unix, cancellationToken: cancellationToken);
            var count = 0;
            foreach (var line in new[] { "hello", $"I am client {i}", "goodbye" })
            {
                count += await client.RequestAsync(line, cancellationToken) == $"echo: {line}" ? 1 : 0;
            }

            await client.DisconnectAsync(cancellationToken);
            return count;
        }));
        Console.WriteLine($"clients: {clients} clients got {replies.Sum()} of {clients * 3} replies in {clock.ElapsedMilliseconds} ms");

        var result = await server.ShutdownAsync(cancellationToken);
        Console.WriteLine($"server: {Volatile.Read(ref ended)} sessions ended ({server.EndedSessions(SessionEndReason.PeerClosed)} closed by their peer); shutdown: {result}");
    }
}
