using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>Shared helpers of the Session specifications (Session/).</summary>
internal static class SessionSpecKit
{
    /// <summary>No lingering after a graceful close, so tests stay fast.</summary>
    public static PipeProtocolOptions Quick { get; } = new() { LingerTimeout = TimeSpan.Zero };

    /// <summary>The transitions of an attempt that failed or was cancelled and rolled back.</summary>
    public static (Runstate, Runstate)[] RolledBack { get; } =
    [
        (Runstate.Idle, Runstate.Connecting),
        (Runstate.Connecting, Runstate.Disconnecting),
        (Runstate.Disconnecting, Runstate.Idle),
    ];

    public static IPEndPoint Loopback0 => new(IPAddress.Loopback, 0);

    public static UnixDomainSocketEndPoint MissingUnixPath() => new(TempPaths.NewSocketPath());

    /// <summary>Two crossed in-memory pipes: what one end writes, the other reads.</summary>
    public static (IDuplexPipe Left, IDuplexPipe Right) CrossedPipes()
        => DuplexPipePair.Create(new PipeOptions(useSynchronizationContext: false));

    /// <summary>Opens two protocols on the two ends of crossed in-memory pipes; both end Running.</summary>
    public static async Task OpenPairAsync(LineProtocol left, LineProtocol right)
    {
        var (a, b) = CrossedPipes();
        await Task.WhenAll(left.OpenAsync(a), right.OpenAsync(b)).Bounded();
    }

    /// <summary>
    /// Collects the first <paramref name="count"/> runstates of a watch. The enumeration starts
    /// (and takes its starting point) synchronously, inside this call.
    /// </summary>
    public static async Task<List<Runstate>> CollectAsync(IAsyncEnumerable<Runstate> source, int count)
    {
        var states = new List<Runstate>();
        await foreach (var state in source)
        {
            states.Add(state);
            if (states.Count == count)
            {
                break;
            }
        }

        return states;
    }

    /// <summary>A plain listening socket on loopback, for a raw peer.</summary>
    public static Socket ListenRaw(out IPEndPoint endPoint) => Aqmp.Pipelines.Testing.LoopbackSockets.Listen(out endPoint);

    /// <summary>A bound socket that does not listen: connecting to its port is refused.</summary>
    public static Socket BindWithoutListening(out IPEndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        endPoint = (IPEndPoint)socket.LocalEndPoint!;
        return socket;
    }

    /// <summary>A TCP port on loopback that was free a moment ago.</summary>
    public static int FreeTcpPort()
    {
        using var probe = BindWithoutListening(out var endPoint);
        return endPoint.Port;
    }

    /// <summary>
    /// Gives <paramref name="protocol"/> a handshake that waits (cancellably) for a line the peer never
    /// sends; the task returned completes once that handshake has started.
    /// </summary>
    public static Task StallHandshake(LineProtocol protocol)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        protocol.Handshake = async (p, handshake, ct) =>
        {
            started.TrySetResult();
            await handshake.ReceiveAsync(ct);
        };
        return started.Task;
    }

    /// <summary>Reads one '\n'-terminated line from a raw socket, byte by byte (never past the line).</summary>
    public static Task<string> ReadLineAsync(Socket socket) => RawPeer.ReadLineAsync(socket);

    /// <summary>Reads one '\n'-terminated line from a raw pipe end.</summary>
    public static async Task<string> ReadLineAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync().AsTask().Bounded();
            var buffer = result.Buffer;
            var newline = buffer.PositionOf((byte)'\n');
            if (newline is { } end)
            {
                var line = Encoding.UTF8.GetString(buffer.Slice(0, end));
                reader.AdvanceTo(buffer.GetPosition(1, end));
                return line;
            }

            if (result.IsCompleted)
            {
                reader.AdvanceTo(buffer.End);
                throw new EndOfStreamException("EOF in the middle of a line.");
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Writes text to a raw pipe end in one flush.</summary>
    public static async Task WriteAsync(PipeWriter writer, string text)
        => await writer.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask().Bounded();

    /// <summary>Reads a raw socket until the end of the stream; returns what was read, fails on a reset or a hang.</summary>
    public static async Task<string> ReadToEndAsync(Socket socket)
    {
        var all = new List<byte>();
        var buffer = new byte[4096];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None).Bounded();
            if (read == 0)
            {
                return Encoding.UTF8.GetString([.. all]);
            }

            all.AddRange(buffer.AsSpan(0, read));
        }
    }

    /// <summary>Reads a raw pipe end until its writer completes; returns what was read.</summary>
    public static async Task<string> ReadToEndAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync().AsTask().Bounded();
            if (result.IsCompleted)
            {
                var text = Encoding.UTF8.GetString(result.Buffer);
                reader.AdvanceTo(result.Buffer.End);
                return text;
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails after the default bound.</summary>
    /// <summary>
    /// Sends message number 0, 1, 2, … through <paramref name="send"/> until one stays pending for
    /// 200 ms: the outbound path has stalled (the peer does not read), so nothing moves until it
    /// does. Returns how many completed before it (the pending one is number <c>Completed</c>) and
    /// the pending send. A send that pends only briefly, while the send loop still makes room, is
    /// awaited and counted; fails the test if <paramref name="limit"/> sends never stall.
    /// </summary>
    public static async Task<(int Completed, Task Pending)> SendUntilOneStaysPendingAsync(Func<int, ValueTask> send, int limit)
    {
        for (var i = 0; i < limit; i++)
        {
            var sending = send(i).AsTask();
            if (await Task.WhenAny(sending, Task.Delay(200)) != sending)
            {
                return (i, sending);
            }

            await sending;
        }

        Assert.Fail($"{limit} sends never waited although the peer does not read: the outbound buffering is unbounded.");
        return default;
    }

    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting until {what}.");
            }

            await Task.Delay(5);
        }
    }

    /// <summary>Whether a TCP connect to <paramref name="endPoint"/> is refused.</summary>
    public static async Task<bool> IsRefusedAsync(EndPoint endPoint)
    {
        using var probe = new Socket(endPoint.AddressFamily, SocketType.Stream, endPoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
        try
        {
            await probe.ConnectAsync(endPoint).Bounded();
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
        {
            return true;
        }
    }
}
