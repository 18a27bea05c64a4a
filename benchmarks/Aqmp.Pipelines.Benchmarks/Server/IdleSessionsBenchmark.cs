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
/// with the sessions idle, minus the heap before they connected, divided by N. With
/// <c>paced SECONDS</c>, every client then echoes one 64 B line per second for that long (each
/// starting at a random point of the first second), and the client process reports the round
/// trips' percentiles as its clients saw them.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --idle-sessions 10000 [SEGMENT-SIZE [silent | paced SECONDS]]</c>
/// (raise <c>ulimit -n</c> above N plus a few hundred first: each process holds N sockets).
/// </remarks>
internal static class IdleSessionsBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var count = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 10_000;
        var segmentSize = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : new PipeProtocolOptions().MinimumSegmentSize;
        var echo = args is not [_, _, "silent", ..];
        var pacedSeconds = args is [_, _, "paced", var seconds] ? int.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture) : 0;
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

        if (pacedSeconds > 0)
        {
            var (gen0, gen1, gen2, allocated) = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalAllocatedBytes());
            await clients.StandardInput.WriteLineAsync($"pace {pacedSeconds}");
            await clients.StandardInput.FlushAsync();
            Console.WriteLine(await clients.StandardOutput.ReadLineAsync());
            Console.WriteLine(
                $"server during the paced echoes: {(GC.GetTotalAllocatedBytes() - allocated) / 1024.0 / 1024:0.0} MiB allocated, " +
                $"collections gen0 {GC.CollectionCount(0) - gen0}, gen1 {GC.CollectionCount(1) - gen1}, gen2 {GC.CollectionCount(2) - gen2}");
        }

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
            while (await Console.In.ReadLineAsync() is { } command && command.StartsWith("pace ", StringComparison.Ordinal))
            {
                Console.WriteLine(await PacedEchoAsync(sockets, int.Parse(command[5..], System.Globalization.CultureInfo.InvariantCulture)));
            }
        }

        foreach (var socket in sockets)
        {
            socket.Dispose();
        }
    }

    /// <summary>
    /// Every socket echoes one 64 B line per second for <paramref name="seconds"/> seconds, each
    /// starting at a random point of the first second; returns the round trips' percentiles.
    /// </summary>
    private static async Task<string> PacedEchoAsync(Socket[] sockets, int seconds)
    {
        var line = Encoding.ASCII.GetBytes(new string('x', 63) + "\n");
        var roundTrips = new long[sockets.Length][];
        var random = new Random(1);
        var offsets = sockets.Select(_ => TimeSpan.FromMilliseconds(random.Next(1000))).ToArray();
        var start = Stopwatch.GetTimestamp();
        await Task.WhenAll(sockets.Select(async (socket, i) =>
        {
            var times = roundTrips[i] = new long[seconds];
            var buffer = new byte[64];
            for (var n = 0; n < seconds; n++)
            {
                var due = offsets[i] + TimeSpan.FromSeconds(n) - Stopwatch.GetElapsedTime(start);
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due);
                }

                var sent = Stopwatch.GetTimestamp();
                await socket.SendAsync(line);
                var read = 0;
                while (read < line.Length)
                {
                    read += await socket.ReceiveAsync(buffer.AsMemory(read));
                }

                times[n] = Stopwatch.GetTimestamp() - sent;
            }
        }));

        var all = roundTrips.SelectMany(t => t).Order().ToArray();
        double Ms(double quantile) => all[Math.Min(all.Length - 1, (int)(quantile * all.Length))] * 1000.0 / Stopwatch.Frequency;
        return $"{sockets.Length} clients x {seconds} paced 64 B echoes ({all.Length} round trips in {Stopwatch.GetElapsedTime(start).TotalSeconds:0.0} s): " +
            $"p50 {Ms(0.50):0.00} ms, p90 {Ms(0.90):0.00} ms, p99 {Ms(0.99):0.00} ms, p99.9 {Ms(0.999):0.00} ms, max {Ms(1):0.00} ms";
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
