using System.Net;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>The kind of loopback socket a benchmark runs over.</summary>
public enum TransportKind
{
    /// <summary>A Unix-domain stream socket in the temporary directory.</summary>
    Unix,

    /// <summary>TCP over 127.0.0.1, with Nagle off.</summary>
    Tcp,
}

/// <summary>Loopback endpoints, connected socket pairs, and the raw-socket loops the baselines share.</summary>
internal static class Loopback
{
    /// <summary>How long one operation may take before it is reported as a stall.</summary>
    public static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(60);

    /// <summary>A fresh endpoint to listen on: a new socket path, or 127.0.0.1 port 0.</summary>
    public static EndPoint NewEndPoint(TransportKind kind) => kind switch
    {
        TransportKind.Unix => new UnixDomainSocketEndPoint(Path.Combine(Path.GetTempPath(), $"aqmp-bench-{Environment.ProcessId}-{Guid.NewGuid():N}.sock")),
        _ => new IPEndPoint(IPAddress.Loopback, 0),
    };

    /// <summary>A new unconnected stream socket for <paramref name="endPoint"/>.</summary>
    public static Socket NewSocket(EndPoint endPoint) => endPoint is UnixDomainSocketEndPoint
        ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

    /// <summary>Two connected sockets: the connecting side and the accepted side.</summary>
    public static async Task<(Socket Client, Socket Server)> ConnectPairAsync(TransportKind kind)
    {
        var endPoint = NewEndPoint(kind);
        using var listener = NewSocket(endPoint);
        listener.Bind(endPoint);
        listener.Listen(1);
        var client = NewSocket(endPoint);
        var accept = listener.AcceptAsync();
        await client.ConnectAsync(listener.LocalEndPoint!).ConfigureAwait(false);
        var server = await accept.ConfigureAwait(false);
        if (kind == TransportKind.Tcp)
        {
            server.NoDelay = true;
        }
        else
        {
            File.Delete(((UnixDomainSocketEndPoint)endPoint).ToString());
        }

        return (client, server);
    }

    /// <summary>Sends every byte of <paramref name="data"/>.</summary>
    public static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        while (!data.IsEmpty)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    /// <summary>Closes a socket without waiting; ignores a peer that is already gone.</summary>
    public static void Close(Socket? socket)
    {
        if (socket is null)
        {
            return;
        }

        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already reset by the peer, or closed by a watchdog.
        }

        socket.Dispose();
    }
}

/// <summary>
/// Turns a stall into an error without putting a cancellation token on every socket call (each
/// pending call would register with it, an allocation per call that the session does not pay):
/// after <see cref="Loopback.OperationTimeout"/> it runs <c>onTimeout</c>, which closes the
/// connection so that the waiting loop fails; the loop then reports <see cref="Stalled"/>.
/// </summary>
internal sealed class Watchdog : IDisposable
{
    private readonly CancellationTokenSource _timer = new(Loopback.OperationTimeout);
    private readonly CancellationTokenRegistration _registration;

    public Watchdog(Action onTimeout) => _registration = _timer.Token.Register(onTimeout);

    /// <summary>Whether the operation timed out and the connection was closed.</summary>
    public bool Fired => _timer.IsCancellationRequested;

    public static TimeoutException Stalled(string progress, Exception inner)
        => new($"Stalled: {progress} after {Loopback.OperationTimeout}; the watchdog closed the connection.", inner);

    public void Dispose()
    {
        _registration.Dispose();
        _timer.Dispose();
    }
}
