using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using Aqmp.Pipelines.Benchmarks.EndToEnd;
using Aqmp.Pipelines.Server;

namespace Aqmp.Pipelines.Benchmarks.Server;

/// <summary>
/// What a metrics listener costs the session-to-session stream through a server: a
/// <see cref="PipeProtocolServer{TMessage}"/> on a Unix socket with one session counting 64 B
/// lines, fed by a client session's <c>SendAsync</c> per line. Each round streams the same bytes
/// twice, once with a <see cref="CountersListener"/> attached (what <c>dotnet-counters</c> attaches)
/// and once with none, in an order alternated every round; the figure is the median of the
/// per-round ratios, attached over absent (the 10th-percentile times' ratio is printed beside it).
/// </summary>
/// <remarks><c>dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --metrics-overhead [ROUNDS] [MIB-PER-STREAM]</c></remarks>
internal static class ServerMetricsOverheadBenchmark
{
    private const int LineLength = 64;

    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100;
        var mebibytes = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 8;
        var lines = mebibytes * 1024 * 1024 / LineLength;
        var payloads = LineStream.Payloads(LineStream.BuildWire(lines, LineLength), LineLength);

        var accepted = new TaskCompletionSource<LineCounterSession>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new PipeProtocolServer<ReadOnlySequence<byte>>(_ =>
        {
            var session = new LineCounterSession(LineLength - 1);
            accepted.TrySetResult(session);
            return session;
        });
        var endPoint = (UnixDomainSocketEndPoint)Loopback.NewEndPoint(TransportKind.Unix);
        await server.ListenAsync(endPoint);
        await using var sender = new LineSenderSession();
        await sender.ConnectAsync(endPoint);
        var receiver = await accepted.Task.WaitAsync(Loopback.OperationTimeout);

        async Task<double> StreamAsync(bool attached)
        {
            using var listener = attached ? new CountersListener(ServerMetricNames.MeterName) : null;
            var clock = Stopwatch.StartNew();
            var done = receiver.Expect(lines);
            await sender.SendAllAsync(payloads);
            await done.WaitAsync(Loopback.OperationTimeout);
            var elapsed = clock.Elapsed.TotalMilliseconds;
            if (receiver.Bytes != (long)lines * (LineLength - 1))
            {
                throw new InvalidOperationException($"received {receiver.Bytes} payload bytes, expected {(long)lines * (LineLength - 1)}");
            }

            if (attached && listener!.Measurements == 0)
            {
                throw new InvalidOperationException("the listener recorded nothing");
            }

            return elapsed;
        }

        // Warm up both ways (tiered compilation, the pools).
        var warmup = Stopwatch.StartNew();
        while (warmup.Elapsed < TimeSpan.FromSeconds(3))
        {
            await StreamAsync(attached: false);
            await StreamAsync(attached: true);
        }

        using (var probe = new CountersListener(ServerMetricNames.MeterName))
        {
            await StreamAsync(attached: false);
            Console.WriteLine($"one stream ({lines} lines) with a listener: {string.Join(", ", probe.PerInstrument.Select(p => $"{p.Instrument} {p.Count}"))} measurements");
        }

        var load = File.ReadAllText("/proc/loadavg").Trim();
        var absent = new List<double>();
        var present = new List<double>();
        var ratios = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            double a, b;
            if (round % 2 == 0)
            {
                a = await StreamAsync(attached: false);
                b = await StreamAsync(attached: true);
            }
            else
            {
                b = await StreamAsync(attached: true);
                a = await StreamAsync(attached: false);
            }

            absent.Add(a);
            present.Add(b);
            ratios.Add(b / a);
        }

        Console.WriteLine(FormattableString.Invariant(
            $"session -> server session, Unix, {LineLength} B lines, {mebibytes} MiB per stream, {rounds} rounds, load {load} -> {File.ReadAllText("/proc/loadavg").Trim()}"));
        Console.WriteLine(FormattableString.Invariant(
            $"  no listener:       p10 {Percentile(absent, 0.1):F1} ms  median {Percentile(absent, 0.5):F1} ms"));
        Console.WriteLine(FormattableString.Invariant(
            $"  listener attached: p10 {Percentile(present, 0.1):F1} ms  median {Percentile(present, 0.5):F1} ms"));
        Console.WriteLine(FormattableString.Invariant(
            $"  attached / absent: median of rounds {Percentile(ratios, 0.5):F3} (p25 {Percentile(ratios, 0.25):F3}, p75 {Percentile(ratios, 0.75):F3}), p10 times {Percentile(present, 0.1) / Percentile(absent, 0.1):F3}"));
        return 0;
    }

    private static double Percentile(IEnumerable<double> values, double fraction)
    {
        var sorted = values.Order().ToArray();
        return sorted[(int)Math.Round(fraction * (sorted.Length - 1))];
    }
}
