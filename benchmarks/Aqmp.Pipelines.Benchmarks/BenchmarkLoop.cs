using System.Diagnostics;
using System.Reflection;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks;

/// <summary>
/// Runs one benchmark case in a plain loop, outside BenchmarkDotNet, so that a profiler attached
/// to this process (<c>perf record</c> with <c>DOTNET_PerfMapEnabled=1</c>, <c>dotnet-trace</c>)
/// sees only that case: its <c>[GlobalSetup]</c>, then operations for the given time, then its
/// <c>[GlobalCleanup]</c>. Prints the operations run and the mean time of one. Not a measurement
/// to quote: use the BenchmarkDotNet run for figures.
/// </summary>
internal static class BenchmarkLoop
{
    /// <summary>
    /// Arguments: <c>Type.Method</c>, then <c>Name=Value</c> for each parameter, and
    /// optionally <c>--seconds=N</c> (timed loop, default 10) and <c>--warmup=N</c> (untimed loop
    /// run first, default 2; 0 for none).
    /// </summary>
    /// <returns>The process exit code.</returns>
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0].Split('.') is not [var typeName, var methodName])
        {
            await Console.Error.WriteLineAsync("usage: --loop Type.Method [Name=Value ...] [--seconds=N] [--warmup=N]");
            return 64;
        }

        var type = typeof(BenchmarkLoop).Assembly.GetTypes().SingleOrDefault(t => t.Name == typeName);
        var method = type?.GetMethod(methodName);
        if (type is null || method?.GetCustomAttribute<BenchmarkAttribute>() is null)
        {
            await Console.Error.WriteLineAsync($"no benchmark {args[0]}");
            return 64;
        }

        var instance = Activator.CreateInstance(type)!;
        var options = new Dictionary<string, double> { ["--seconds"] = 10.0, ["--warmup"] = 2.0 };
        BenchmarkArguments.Apply(instance, args.Skip(1), options);
        var seconds = options["--seconds"];
        var warmup = options["--warmup"];

        await InvokeAsync(Hook<GlobalSetupAttribute>(type, methodName, a => a.Targets), instance);

        // The cold figure: operations that finished within the first second after set-up (at
        // least one), whether in the warm-up or, with no warm-up, in the timed loop.
        var cold = new ColdCounter();
        var warmupClock = Stopwatch.StartNew();
        var warmupOperations = 0;
        while (warmupClock.Elapsed.TotalSeconds < warmup)
        {
            await InvokeAsync(method, instance);
            warmupOperations++;
            cold.Finished(warmupClock.Elapsed);
        }

        var operations = 0;
        var process = Process.GetCurrentProcess();
        var processorBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var sinceSetup = warmupClock.Elapsed;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            await InvokeAsync(method, instance);
            operations++;
            cold.Finished(sinceSetup + clock.Elapsed);
        }

        var elapsed = clock.Elapsed;
        process.Refresh();
        var processor = process.TotalProcessorTime - processorBefore;
        await InvokeAsync(Hook<GlobalCleanupAttribute>(type, methodName, a => a.Targets), instance);
        Console.WriteLine(FormattableString.Invariant($"{args[0]}: {operations} operations in {elapsed.TotalSeconds:F1} s, {elapsed.TotalMilliseconds / operations:F3} ms each"));
        Console.WriteLine(FormattableString.Invariant($"  warm-up: {warmupOperations} operations in {sinceSetup.TotalSeconds:F1} s; cold (first second after set-up): {cold.Operations} operations, {cold.MillisecondsEach:F3} ms each"));
        Console.WriteLine(FormattableString.Invariant($"  processor time (all threads, user and system): {processor.TotalMilliseconds / operations:F3} ms each"));
        return 0;
    }

    /// <summary>The set-up or clean-up method that applies to <paramref name="methodName"/>: one targeting it, else one targeting all.</summary>
    private static MethodInfo? Hook<TAttribute>(Type type, string methodName, Func<TAttribute, string[]> targets)
        where TAttribute : Attribute
    {
        var hooks = type.GetMethods().Select(m => (Method: m, Attribute: m.GetCustomAttribute<TAttribute>())).Where(h => h.Attribute is not null).ToList();
        return hooks.FirstOrDefault(h => targets(h.Attribute!).Contains(methodName)).Method
            ?? hooks.FirstOrDefault(h => targets(h.Attribute!).Length == 0).Method;
    }

    /// <summary>Counts the operations that finish within the first second after set-up (at least the first one).</summary>
    private sealed class ColdCounter
    {
        private TimeSpan _last;

        public int Operations { get; private set; }

        public double MillisecondsEach => Operations == 0 ? double.NaN : _last.TotalMilliseconds / Operations;

        public void Finished(TimeSpan sinceSetup)
        {
            if (Operations == 0 || sinceSetup.TotalSeconds <= 1)
            {
                Operations++;
                _last = sinceSetup;
            }
        }
    }

    private static async Task InvokeAsync(MethodInfo? method, object instance)
    {
        switch (method?.Invoke(instance, null))
        {
            case Task task:
                await task;
                break;
            case ValueTask valueTask:
                await valueTask;
                break;
        }
    }
}
