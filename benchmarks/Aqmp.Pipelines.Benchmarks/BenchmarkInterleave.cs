using System.Diagnostics;
using System.Reflection;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks;

/// <summary>
/// Runs every benchmark of one class, with one set of parameters, interleaved in one process: round
/// after round, each method times a batch of operations (about 2 ms), in an order rotated each
/// round. On a shared machine, whose load moves from one second to the next, the ratio of two rows
/// measured seconds apart (as BenchmarkDotNet measures them) moves with it. Here every method is
/// measured in many short batches spread over the same seconds; other processes only ever add
/// time to a batch, so each method's 10th-percentile batch is its speed when it had the core, and
/// the ratio of those to the baseline's is the figure to quote for "within N% of" claims (the
/// median of the per-round ratios is printed beside it). Absolute times and allocation come from
/// the BenchmarkDotNet run.
/// </summary>
internal static class BenchmarkInterleave
{
    /// <summary>
    /// Arguments: the class name, then <c>Name=Value</c> for each parameter, and optionally
    /// <c>--rounds=N</c> (default 200) and <c>--warmup=S</c> (seconds each method runs first, default 1).
    /// </summary>
    /// <returns>The process exit code.</returns>
    public static int Run(string[] args)
    {
        var type = args.Length == 0 ? null : typeof(BenchmarkInterleave).Assembly.GetTypes().SingleOrDefault(t => t.Name == args[0]);
        if (type is null)
        {
            Console.Error.WriteLine("usage: --interleave Type [Name=Value ...] [--rounds=N] [--warmup=S]");
            return 64;
        }

        var instance = Activator.CreateInstance(type)!;
        var options = new Dictionary<string, double> { ["--rounds"] = 200, ["--warmup"] = 1.0 };
        var parameters = BenchmarkArguments.Apply(instance, args.Skip(1), options);
        var rounds = (int)options["--rounds"];
        var warmup = options["--warmup"];

        foreach (var setup in type.GetMethods().Where(m => m.GetCustomAttribute<GlobalSetupAttribute>() is not null))
        {
            setup.Invoke(instance, null);
        }

        var methods = type.GetMethods().Where(m => m.GetCustomAttribute<BenchmarkAttribute>() is not null).ToArray();
        if (methods.Any(m => m.ReturnType != typeof(long)))
        {
            Console.Error.WriteLine($"{type.Name}: --interleave runs classes whose benchmarks are synchronous and return long");
            return 64;
        }

        var baseline = Array.FindIndex(methods, m => m.GetCustomAttribute<BenchmarkAttribute>()!.Baseline);
        var operations = methods.Select(m => m.CreateDelegate<Func<long>>(instance)).ToArray();

        // Warm up (tiered compilation, OSR) and size each method's batch to about 2 ms.
        var batch = new int[methods.Length];
        for (var i = 0; i < methods.Length; i++)
        {
            var clock = Stopwatch.StartNew();
            var count = 0;
            while (clock.Elapsed.TotalSeconds < warmup || count < 50)
            {
                operations[i]();
                count++;
            }

            batch[i] = Math.Max(1, (int)(count * 0.002 / clock.Elapsed.TotalSeconds));
        }

        var perOperation = methods.Select(_ => new List<double>()).ToArray();
        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < methods.Length; k++)
            {
                var i = (k + round) % methods.Length;
                var clock = Stopwatch.StartNew();
                for (var n = 0; n < batch[i]; n++)
                {
                    operations[i]();
                }

                perOperation[i].Add(clock.Elapsed.TotalMicroseconds / batch[i]);
            }
        }

        Console.WriteLine($"{type.Name} {string.Join(' ', parameters)}: {rounds} rounds, load {File.ReadAllText("/proc/loadavg").Trim()}");
        var baselineTenth = Percentile(perOperation[baseline], 0.10);
        for (var i = 0; i < methods.Length; i++)
        {
            var ratios = perOperation[i].Zip(perOperation[baseline], (a, b) => a / b).ToArray();
            var tenth = Percentile(perOperation[i], 0.10);
            Console.WriteLine(FormattableString.Invariant(
                $"  {methods[i].Name,-38} p10 {tenth,10:F1} us  median {Percentile(perOperation[i], 0.5),10:F1} us  ratio to baseline: p10 {tenth / baselineTenth:F3}, median of rounds {Percentile(ratios, 0.5):F3}"));
        }

        return 0;
    }

    private static double Percentile(IEnumerable<double> values, double fraction)
    {
        var sorted = values.Order().ToArray();
        return sorted[(int)Math.Round(fraction * (sorted.Length - 1))];
    }
}
