using System.Diagnostics;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>Counts of what this process holds: open file descriptors and managed memory.</summary>
internal static class ProcessResources
{
    /// <summary>How many file descriptors this process has open (entries of <c>/proc/self/fd</c>).</summary>
    public static int OpenFileDescriptors() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>Managed heap size after a full, compacting collection.</summary>
    public static long SettledManagedBytes()
    {
        UnobservedTaskExceptions.ForceFinalization();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    /// <summary>
    /// The smallest of several <see cref="SettledManagedBytes"/> readings taken
    /// <paramref name="interval"/> apart: what this process holds for good while a state lasts,
    /// without what work still finishing elsewhere in the process (an earlier test's teardown)
    /// holds for a moment. Use it only while the state being measured cannot change.
    /// </summary>
    public static async Task<long> QuietestManagedBytesAsync(int samples, TimeSpan interval)
    {
        var quietest = SettledManagedBytes();
        for (var sample = 1; sample < samples; sample++)
        {
            await Task.Delay(interval);
            quietest = Math.Min(quietest, SettledManagedBytes());
        }

        return quietest;
    }

    /// <summary>The process's peak resident set so far, in bytes.</summary>
    public static long PeakWorkingSet()
    {
        using var self = Process.GetCurrentProcess();
        return self.PeakWorkingSet64;
    }
}
