using System.Net;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Testing;

/// <summary>Plain sockets on 127.0.0.1, for raw peers.</summary>
internal static class LoopbackSockets
{
    /// <summary>A TCP socket listening on a free port of 127.0.0.1 with the given backlog.</summary>
    public static Socket Listen(out IPEndPoint endPoint, int backlog = 8)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(backlog);
        endPoint = (IPEndPoint)socket.LocalEndPoint!;
        return socket;
    }
}
