using System.Net;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Testing;

/// <summary>
/// A TCP listener on 127.0.0.1 that never accepts and whose backlog (0) is already filled by
/// connections of its own: a further connect gets no answer to its SYN (the kernel drops it while
/// the accept queue is full) and waits until it is cancelled. Only loopback is used. Disposing
/// closes the listener and the filling connections.
/// </summary>
internal sealed class FullBacklogListener : IDisposable
{
    private static readonly TimeSpan ProbeWait = TimeSpan.FromMilliseconds(200);
    private const int MostFillers = 16;

    private readonly Socket _listener;
    private readonly List<Socket> _fillers = [];

    private FullBacklogListener(Socket listener, IPEndPoint endPoint)
    {
        _listener = listener;
        EndPoint = endPoint;
    }

    /// <summary>Where the listener listens.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The listener as an address for <c>ConnectAsync</c>.</summary>
    public string Address => $"127.0.0.1:{EndPoint.Port}";

    /// <summary>
    /// Listens with backlog 0 and connects to it until one connect is left unanswered for
    /// <see cref="ProbeWait"/>: from then on, every connect waits.
    /// </summary>
    /// <returns>The listener, its backlog full.</returns>
    /// <exception cref="InvalidOperationException">The backlog did not fill after many connections.</exception>
    public static async Task<FullBacklogListener> StartAsync()
    {
        var socket = LoopbackSockets.Listen(out var endPoint, backlog: 0);
        var listener = new FullBacklogListener(socket, endPoint);
        try
        {
            while (listener._fillers.Count < MostFillers)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                listener._fillers.Add(filler);
                using var wait = new CancellationTokenSource(ProbeWait);
                try
                {
                    await filler.ConnectAsync(listener.EndPoint, wait.Token);
                }
                catch (OperationCanceledException)
                {
                    // Unanswered: the backlog is full.
                    return listener;
                }
            }

            throw new InvalidOperationException($"The backlog of {listener.EndPoint} did not fill after {MostFillers} connections.");
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var filler in _fillers)
        {
            filler.Dispose();
        }

        _listener.Dispose();
    }
}
