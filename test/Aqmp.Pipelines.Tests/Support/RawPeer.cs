using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>A bare listening socket standing in for a peer that is not a PipeProtocol: it reads only when told to.</summary>
internal sealed class RawPeer : IDisposable
{
    private readonly Socket _listener;

    private RawPeer(Socket listener)
    {
        _listener = listener;
        EndPoint = listener.LocalEndPoint!;
    }

    public EndPoint EndPoint { get; }

    /// <summary>
    /// Listens on TCP loopback. A <paramref name="receiveBufferSize"/> is inherited by the accepted socket:
    /// a small one fills up quickly when the peer does not read.
    /// </summary>
    public static RawPeer ListenTcp(int? receiveBufferSize = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (receiveBufferSize is { } size)
        {
            socket.ReceiveBufferSize = size;
        }

        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(8);
        return new RawPeer(socket);
    }

    /// <summary>Listens on a fresh Unix-domain socket path from <paramref name="socketFiles"/>.</summary>
    public static RawPeer ListenUnix(SocketFiles socketFiles)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(socketFiles.NewEndPoint());
        socket.Listen(8);
        return new RawPeer(socket);
    }

    public Task<Socket> AcceptAsync() => _listener.AcceptAsync().Bounded();

    /// <summary>Reads <paramref name="count"/> '\n'-terminated lines (fewer if the peer closes first).</summary>
    public static async Task<List<string>> ReadLinesAsync(Socket socket, int count)
    {
        var lines = new List<string>(count);
        var pending = new List<byte>();
        var chunk = new byte[64 * 1024];
        while (lines.Count < count)
        {
            var read = await socket.ReceiveAsync(chunk);
            if (read == 0)
            {
                break;
            }

            for (var i = 0; i < read; i++)
            {
                if (chunk[i] == (byte)'\n')
                {
                    lines.Add(Encoding.UTF8.GetString([.. pending]));
                    pending.Clear();
                }
                else
                {
                    pending.Add(chunk[i]);
                }
            }
        }

        Assert.That(pending, Is.Empty, "reading stopped at a line boundary");
        return lines;
    }

    /// <summary>Reads one '\n'-terminated line from a raw socket, byte by byte (never past the line), bounded by the test timeout.</summary>
    public static async Task<string> ReadLineAsync(Socket socket)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            var read = await socket.ReceiveAsync(one, SocketFlags.None).Bounded();
            if (read == 0)
            {
                throw new EndOfStreamException($"EOF after {bytes.Count} bytes of a line.");
            }

            if (one[0] == (byte)'\n')
            {
                return Encoding.UTF8.GetString([.. bytes]);
            }

            bytes.Add(one[0]);
        }
    }

    /// <summary>Reads until the peer closes its sending side, returning everything as UTF-8.</summary>
    public static async Task<string> ReadToEndAsync(Socket socket)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[64 * 1024];
        while (true)
        {
            var read = await socket.ReceiveAsync(chunk).Bounded();
            if (read == 0)
            {
                return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
            }

            buffer.Write(chunk, 0, read);
        }
    }

    public void Dispose() => _listener.Dispose();
}
