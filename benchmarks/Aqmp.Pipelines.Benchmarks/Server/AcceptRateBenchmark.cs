using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Benchmarks.Server;

/// <summary>
/// Connections per second, each sending one line and closing, served to their end: a
/// <see cref="PipeProtocolServer{TMessage}"/> against a minimal raw <see cref="Socket.AcceptAsync(CancellationToken)"/>
/// loop (one task per connection reading to the end), over TCP loopback, interleaved rounds in one
/// process. The clients (64 at a time) run in the same process.
/// </summary>
/// <remarks><c>dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --accept-rate 5000 [ROUNDS]</c></remarks>
internal static class AcceptRateBenchmark
{
    private const int Concurrency = 64;
    private static readonly byte[] Line = Encoding.ASCII.GetBytes("hello\n");

    public static async Task<int> RunAsync(string[] args)
    {
        var count = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 5000;
        var rounds = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
        var raw = new List<double>();
        var server = new List<double>();
        await RawRoundAsync(500);
        await ServerRoundAsync(500);
        for (var round = 0; round < rounds; round++)
        {
            raw.Add(await RawRoundAsync(count));
            server.Add(await ServerRoundAsync(count));
            Console.WriteLine($"round {round + 1}: raw accept loop {raw[^1]:0} conn/s, PipeProtocolServer {server[^1]:0} conn/s");
        }

        raw.Sort();
        server.Sort();
        Console.WriteLine($"median of {rounds}: raw {raw[rounds / 2]:0} conn/s, server {server[rounds / 2]:0} conn/s ({server[rounds / 2] / raw[rounds / 2]:P0} of raw)");
        return 0;
    }

    private static async Task<double> RawRoundAsync(int count)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(512);
        var served = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                Socket socket;
                try
                {
                    socket = await listener.AcceptAsync();
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    return;
                }

                _ = Task.Run(async () =>
                {
                    using (socket)
                    {
                        var buffer = new byte[64];
                        while (await socket.ReceiveAsync(buffer) > 0)
                        {
                        }
                    }

                    if (Interlocked.Increment(ref served) == count)
                    {
                        done.TrySetResult();
                    }
                });
            }
        });

        var elapsed = await ClientsAsync((IPEndPoint)listener.LocalEndPoint!, count, done.Task);
        listener.Dispose();
        await accepting;
        return count / elapsed.TotalSeconds;
    }

    private static async Task<double> ServerRoundAsync(int count)
    {
        var ended = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new PipeProtocolServer<string>(_ => new Sink(), new PipeProtocolServerOptions { ListenBacklog = 512 });
        server.SessionEnded += (_, _) =>
        {
            if (Interlocked.Increment(ref ended) == count)
            {
                done.TrySetResult();
            }
        };
        var endPoint = (IPEndPoint)await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var elapsed = await ClientsAsync(endPoint, count, done.Task);
        return count / elapsed.TotalSeconds;
    }

    /// <summary>Connects <paramref name="count"/> clients, <see cref="Concurrency"/> at a time, each sending one line and closing; the time until <paramref name="served"/> completes.</summary>
    private static async Task<TimeSpan> ClientsAsync(IPEndPoint endPoint, int count, Task served)
    {
        var clock = Stopwatch.StartNew();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) < count)
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(endPoint);
                await socket.SendAsync(Line);
                socket.Shutdown(SocketShutdown.Send);
                var buffer = new byte[16];
                while (await socket.ReceiveAsync(buffer) > 0)
                {
                }
            }
        }));
        await served.WaitAsync(TimeSpan.FromMinutes(2));
        return clock.Elapsed;
    }

    /// <summary>Reads lines and does nothing with them.</summary>
    private sealed class Sink() : PipeProtocol<string>(new Utf8LineFramer())
    {
        protected override ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
