using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>What the server specs share: an echo session factory, raw line clients, and a record of ended sessions.</summary>
internal static class ServerSpecKit
{
    /// <summary>A line session that sends every line back.</summary>
    public static LineProtocol Echo(ServerConnectionInfo info)
    {
        var session = new LineProtocol(name: "s" + info.Id);
        session.OnLine = (line, token) => session.SendLineAsync(line, token);
        return session;
    }

    /// <summary>Connects a plain socket to <paramref name="endPoint"/>.</summary>
    public static async Task<Socket> ConnectAsync(EndPoint endPoint)
    {
        var socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint).Bounded();
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends each line, newline-terminated, in one write.</summary>
    public static async Task SendLinesAsync(Socket socket, params string[] lines)
        => await socket.SendAsync(Encoding.UTF8.GetBytes(string.Concat(lines.Select(line => line + "\n"))));

    /// <summary>Sends one line and reads the echo.</summary>
    public static async Task<string> EchoAsync(Socket socket, string line)
    {
        await SendLinesAsync(socket, line);
        return (await RawPeer.ReadLinesAsync(socket, 1).Bounded()).Single();
    }

    /// <summary>Whether the peer closed (a read returns 0 or fails) within the bound.</summary>
    public static async Task<bool> ClosedByPeerAsync(Socket socket, TimeSpan? within = null)
    {
        var buffer = new byte[256];
        using var limit = new CancellationTokenSource(within ?? TestTimeouts.Default);
        try
        {
            while (true)
            {
                if (await socket.ReceiveAsync(buffer, SocketFlags.None, limit.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds, polling, for at most the default test bound.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("Timed out waiting until " + what);
            }

            await Task.Delay(10);
        }
    }

    /// <summary>Records every <see cref="PipeProtocolServer{TMessage}.SessionEnded"/>.</summary>
    public sealed class EndRecorder
    {
        private readonly ConcurrentQueue<SessionEndedEventArgs> _ended = new();

        public EndRecorder(PipeProtocolServer<string> server) => server.SessionEnded += (_, e) => _ended.Enqueue(e);

        public IReadOnlyList<SessionEndedEventArgs> Ended => [.. _ended];

        public int Count => _ended.Count;

        public IReadOnlyList<SessionEndReason> Reasons => [.. _ended.Select(e => e.Reason)];

        public Task WaitForAsync(int count) => WaitUntilAsync(() => _ended.Count >= count, $"{count} sessions ended (so far: {string.Join(", ", Reasons)})");
    }
}
