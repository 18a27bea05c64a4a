using System.Diagnostics;
using System.Globalization;

namespace Aqmp.Pipelines.Soak;

/// <summary>
/// The soak run: <c>--duration=SECONDS</c> (default 60) of echo traffic through QMP clients against
/// simulators while faults are injected at random (<c>--seed=N</c> fixes its random choices: which fault, when, payload sizes;
/// <c>--lanes=N</c>, default 4, sets how many client/simulator pairs run at once). Prints one summary
/// line and exits 0 only when no execute was lost and nothing hung.
/// </summary>
internal static class Program
{
    private const int ExitUsage = 64;
    private const int ExitFailed = 1;
    private const int ExitHung = 2;

    // Beyond the duration: time for the lanes to finish their last operations and close.
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(30);

    public static async Task<int> Main(string[] args)
    {
        if (!TryParse(args, out var duration, out var seed, out var lanes, out var problem))
        {
            await Console.Error.WriteLineAsync($"soak: {problem}");
            await Console.Error.WriteLineAsync("usage: Aqmp.Pipelines.Soak [--duration=SECONDS] [--seed=N] [--lanes=N]");
            return ExitUsage;
        }

        var unobserved = 0;
        TaskScheduler.UnobservedTaskException += (_, e) =>
        {
            Interlocked.Increment(ref unobserved);
            Console.Error.WriteLine($"soak: unobserved task exception: {e.Exception}");
        };

        Console.WriteLine($"soak: {duration.TotalSeconds:F0} s, {lanes} lanes (a simulator and a client with 4 echoes in flight each), seed {seed} (--seed={seed} repeats its random choices)");
        var counters = new SoakCounters();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(duration);
        var seeds = new Random(seed);
        var run = Task.WhenAll(Enumerable.Range(0, lanes).Select(i => new SoakLane(i, seeds.Next(), counters)).Select(lane => Task.Run(() => lane.RunAsync(stop.Token))));

        // The global watchdog: the lanes bound every operation, but if they themselves never end, fail.
        if (await Task.WhenAny(run, Task.Delay(duration + ShutdownGrace)) != run)
        {
            Report(clock.Elapsed, counters);
            Console.WriteLine($"soak: FAILED: the run did not end within {ShutdownGrace.TotalSeconds:F0} s after its duration (hang)");
            return ExitHung;
        }

        await run;
        clock.Stop();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        var accounted = counters.Received + counters.Interrupted + counters.Lost;
        var failures = new List<string>();
        if (counters.Lost > 0)
        {
            failures.Add($"{counters.Lost} executes lost");
        }

        if (counters.Hangs > 0)
        {
            failures.Add($"{counters.Hangs} operations hung past the {SoakLane.Watchdog.TotalSeconds:F0} s watchdog");
        }

        if (accounted != counters.Sent)
        {
            failures.Add($"{counters.Sent - accounted} executes have no outcome");
        }

        if (counters.Received == 0)
        {
            failures.Add("no execute was answered at all");
        }

        if (Volatile.Read(ref unobserved) > 0)
        {
            // An error nobody saw is a root cause lost.
            failures.Add($"{unobserved} tasks faulted unobserved");
        }

        foreach (var loss in counters.Losses)
        {
            Console.WriteLine($"soak: lost: {loss}");
        }

        Console.WriteLine($"soak: interrupted by: {counters.InterruptedBreakdown}; faults: {counters.FaultBreakdown}");
        if (failures.Count > 0)
        {
            Console.WriteLine($"soak: FAILED: {string.Join("; ", failures)} (seed {seed})");
        }

        Report(clock.Elapsed, counters);
        return failures.Count == 0 ? 0 : ExitFailed;
    }

    private static void Report(TimeSpan elapsed, SoakCounters counters)
        => Console.WriteLine(
            $"soak: {elapsed.TotalSeconds:F1} s, sent {counters.Sent}, received {counters.Received}, interrupted {counters.Interrupted}, "
            + $"lost {counters.Lost}, faults injected {counters.FaultsInjected}, reconnects {counters.Reconnects}");

    private static bool TryParse(string[] args, out TimeSpan duration, out int seed, out int lanes, out string problem)
    {
        duration = TimeSpan.FromSeconds(60);
        seed = Random.Shared.Next();
        lanes = 4;
        problem = string.Empty;
        foreach (var arg in args)
        {
            var (name, value) = arg.Split('=', 2) switch
            {
                [var n, var v] => (n, v),
                [var n] => (n, string.Empty),
                _ => (arg, string.Empty),
            };
            switch (name)
            {
                case "--duration" when double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds > 0:
                    duration = TimeSpan.FromSeconds(seconds);
                    break;
                case "--seed" when int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var fixedSeed):
                    seed = fixedSeed;
                    break;
                case "--lanes" when int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var count) && count > 0:
                    lanes = count;
                    break;
                default:
                    problem = $"unknown or malformed argument '{arg}'";
                    return false;
            }
        }

        return true;
    }
}
