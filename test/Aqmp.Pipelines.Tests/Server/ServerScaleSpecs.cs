using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>
/// A thousand clients at once, each exchanging ten lines with its own session, over Unix and TCP:
/// every line comes back, in order, to the client that sent it, and every session ends as the
/// peer closing it. The phases' times are printed, never asserted.
/// </summary>
[NonParallelizable]
public class ServerScaleSpecs
{
    private const int Clients = 1000;
    private const int Lines = 10;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    private readonly SocketFiles _files = new();

    [TearDown]
    public void DeleteSocketFiles() => _files.DeleteAll();

    [TestCase("unix")]
    [TestCase("tcp")]
    public async Task A_thousand_concurrent_sessions_each_echo_ten_lines_with_none_lost(string transport)
    {
        await using var server = new PipeProtocolServer<string>(Echo, new PipeProtocolServerOptions { ListenBacklog = Clients });
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(transport == "unix" ? _files.NewEndPoint() : new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        var clock = Stopwatch.StartNew();

        var sockets = await Task.WhenAll(Enumerable.Range(0, Clients).Select(_ => ConnectAsync(endPoint))).WaitAsync(Bound);
        await WaitUntilAsync(() => server.ActiveSessions == Clients, $"{Clients} sessions run (so far {server.ActiveSessions})");
        var connected = clock.Elapsed;
        var echoed = await Task.WhenAll(sockets.Select((socket, i) => ExchangeAsync(socket, i))).WaitAsync(Bound);
        var exchanged = clock.Elapsed;
        foreach (var socket in sockets)
        {
            socket.Dispose();
        }

        await WaitUntilAsync(() => ended.Count == Clients, $"{Clients} sessions ended (so far {ended.Count})");
        var finished = clock.Elapsed;

        TestContext.Out.WriteLine(
            $"{transport}: {Clients} sessions connected and running in {connected.TotalMilliseconds:0} ms, " +
            $"{Clients * Lines} echoes in {(exchanged - connected).TotalMilliseconds:0} ms, all ended {(finished - exchanged).TotalMilliseconds:0} ms after the clients closed");
        Assert.That(echoed.Sum(), Is.EqualTo(Clients * Lines), "every line came back");
        Assert.That(ended.Reasons, Is.All.EqualTo(SessionEndReason.PeerClosed));
        Assert.That(server.AcceptedConnections, Is.EqualTo(Clients));
        Assert.That(server.ActiveSessions, Is.Zero);
    }

    /// <summary>Sends ten lines one at a time, each after the previous echo; returns how many came back right.</summary>
    private static async Task<int> ExchangeAsync(Socket socket, int client)
    {
        var buffer = new byte[128];
        var pending = new StringBuilder();
        var good = 0;
        for (var i = 0; i < Lines; i++)
        {
            var line = $"client {client} line {i}";
            await socket.SendAsync(Encoding.UTF8.GetBytes(line + "\n"));
            while (true)
            {
                var text = pending.ToString();
                var newline = text.IndexOf('\n', StringComparison.Ordinal);
                if (newline >= 0)
                {
                    pending.Remove(0, newline + 1);
                    if (text[..newline] == line)
                    {
                        good++;
                    }

                    break;
                }

                var read = await socket.ReceiveAsync(buffer);
                if (read == 0)
                {
                    return good;
                }

                pending.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }
        }

        return good;
    }
}
