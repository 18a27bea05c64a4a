using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Benchmarks.Server;

/// <summary>
/// Managed heap per idle server session: a <see cref="PipeProtocolServer{TMessage}"/> on a Unix
/// socket, N clients in a child process (so that their sockets are not on this heap), each
/// exchanging one line and then idle. The figure is the heap after a full blocking collection
/// with the sessions idle, minus the heap before they connected, divided by N.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --idle-sessions 10000 [SEGMENT-SIZE [silent]]</c>
/// (raise <c>ulimit -n</c> above N plus a few hundred first: each process holds N sockets).
/// </remarks>
internal static class IdleSessionsBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var count = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 10_000;
        var segmentSize = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : new PipeProtocolOptions().MinimumSegmentSize;
        var echo = args is not [_, _, "silent"];
        var path = Path.Combine(Path.GetTempPath(), $"aqmp-idle-{Environment.ProcessId}.sock");
        await using var server = new PipeProtocolServer<string>(
            _ => new LineEcho(),
            new PipeProtocolServerOptions
            {
                MaximumSessions = count + 10,
                ListenBacklog = 4096,
                HandshakeTimeout = TimeSpan.FromMinutes(1),
                Transport = new PipeProtocolOptions { MinimumSegmentSize = segmentSize },
            });
        var endPoint = await server.ListenAsync(new UnixDomainSocketEndPoint(path));

        // Warm up: one client, so that what every session shares (JIT, pools, statics) is in the baseline.
        await RunClientsAsync(path, 50, echo, untilEnter: false);
        await WaitAsync(() => server.ActiveSessions == 0);
        var before = FullHeap();

        var clock = Stopwatch.StartNew();
        using var clients = StartClientProcess(path, count, echo);
        var ready = await clients.StandardOutput.ReadLineAsync();
        if (ready != "ready")
        {
            Console.Error.WriteLine($"the client process said: {ready} {await clients.StandardError.ReadToEndAsync()}");
            return 1;
        }

        await WaitAsync(() => server.ActiveSessions == count);
        var connected = clock.Elapsed;
        await Task.Delay(1000);
        var after = FullHeap();
        var perSession = (after - before) / (double)count;
        Console.WriteLine(
            $"{count} idle sessions ({(echo ? "one line echoed each" : "silent")}, {segmentSize / 1024} KiB segments): heap {before / 1024.0 / 1024:0.0} MiB before, {after / 1024.0 / 1024:0.0} MiB with them idle: " +
            $"{perSession:0} B ({perSession / 1024:0.00} KiB) per session; connected and echoed in {connected.TotalSeconds:0.0} s; " +
            $"process working set {Environment.WorkingSet / 1024.0 / 1024:0} MiB");

        await clients.StandardInput.WriteLineAsync("exit");
        await clients.WaitForExitAsync();
        clock.Restart();
        await WaitAsync(() => server.ActiveSessions == 0);
        Console.WriteLine($"all ended {clock.Elapsed.TotalSeconds:0.0} s after the clients left: {server.EndedSessions(SessionEndReason.PeerClosed)} closed by their peer");
        return 0;
    }

    /// <summary>The child process: connects <paramref name="args"/>[1] clients to the socket at args[0], each echoes one line (args[2] "echo") or not, says "ready", holds them until a line on stdin.</summary>
    public static async Task<int> RunClientProcessAsync(string[] args)
    {
        await RunClientsAsync(args[0], int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), echo: args[2] == "echo", untilEnter: true);
        return 0;
    }

    private static async Task RunClientsAsync(string path, int count, bool echo, bool untilEnter)
    {
        var sockets = new Socket[count];
        using var gate = new SemaphoreSlim(256);
        await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                var socket = await ConnectAsync(path);
                if (echo)
                {
                    await socket.SendAsync(Encoding.ASCII.GetBytes("hi\n"));
                    var buffer = new byte[8];
                    var read = 0;
                    while (read < 3)
                    {
                        read += await socket.ReceiveAsync(buffer.AsMemory(read));
                    }
                }

                sockets[i] = socket;
            }
            finally
            {
                gate.Release();
            }
        }));
        if (untilEnter)
        {
            Console.WriteLine("ready");
            await Console.In.ReadLineAsync();
        }

        foreach (var socket in sockets)
        {
            socket.Dispose();
        }
    }

    /// <summary>Connects, retrying while the listener's backlog is full (a Unix socket says EAGAIN at once).</summary>
    private static async Task<Socket> ConnectAsync(string path)
    {
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
                return socket;
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.WouldBlock)
            {
                socket.Dispose();
                await Task.Delay(5);
            }
        }
    }

    private static Process StartClientProcess(string path, int count, bool echo)
    {
        var host = Environment.ProcessPath!;
        var start = new ProcessStartInfo(host) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            start.ArgumentList.Add(typeof(IdleSessionsBenchmark).Assembly.Location);
        }

        start.ArgumentList.Add("--idle-clients");
        start.ArgumentList.Add(path);
        start.ArgumentList.Add(count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        start.ArgumentList.Add(echo ? "echo" : "silent");
        return Process.Start(start)!;
    }

    private static long FullHeap()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static async Task WaitAsync(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > TimeSpan.FromMinutes(3))
            {
                throw new TimeoutException("the sessions did not reach the expected count");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Sends every line back.</summary>
    private sealed class LineEcho() : PipeProtocol<string>(new Utf8LineFramer())
    {
        protected override ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken)
            => context.SendAsync(message, cancellationToken);
    }
}
