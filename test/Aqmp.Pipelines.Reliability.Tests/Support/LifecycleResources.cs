using System.Diagnostics;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// What the lifecycle tests count before and after a run of cycles, once the process has settled:
/// open descriptors, managed bytes after a full collection, thread-pool threads and queued work
/// items (the proxy for live tasks: a leaked loop keeps work queued or threads busy, and holds buffers).
/// </summary>
/// <param name="FileDescriptors">Every entry of <c>/proc/self/fd</c> (reported only).</param>
/// <param name="IoDescriptors">
/// The descriptors that are not files on disk: sockets, pipes, epoll and event descriptors — what a
/// session opens. Files are left out: the runtime opens assemblies and symbol files lazily, e.g.
/// when it first records the stack of a failed socket send (System.Diagnostics.StackTrace, the
/// library's .pdb: five descriptors at a random moment of a run), which is no leak.
/// </param>
/// <param name="Sockets">The sockets among them (reported).</param>
internal readonly record struct LifecycleSnapshot(int FileDescriptors, int IoDescriptors, int Sockets, long ManagedBytes, int PoolThreads, long PendingWorkItems)
{
    public override string ToString()
        => $"fds {FileDescriptors} (sockets/pipes/events {IoDescriptors}, sockets {Sockets}), managed {ManagedBytes / 1024.0:F0} KiB, pool threads {PoolThreads}, pending work items {PendingWorkItems}";
}

/// <summary>Settling and measuring helpers of the Lifecycle fixtures.</summary>
internal static class LifecycleResources
{
    /// <summary>
    /// I/O descriptors (<see cref="LifecycleSnapshot.IoDescriptors"/>) a run may leave above its baseline. The baseline is taken after a warm-up
    /// cycle, so the runtime's own lazily opened descriptors (the socket engine's epoll and its
    /// wake-up pipe, timers) already exist; the slack of 2 covers one such descriptor opened late
    /// (a second socket engine, a diagnostics pipe) without hiding a per-cycle leak, which over
    /// hundreds of cycles would be hundreds of descriptors.
    /// </summary>
    public const int IoDescriptorSlack = 2;

    /// <summary>How long the process may take to close what a finished run released.</summary>
    private static readonly TimeSpan SettleBound = TimeSpan.FromSeconds(5);

    /// <summary>Collects garbage, runs finalizers, and measures.</summary>
    public static LifecycleSnapshot Take()
    {
        var managed = ProcessResources.SettledManagedBytes();
        var (all, io, sockets) = CountDescriptors();
        return new LifecycleSnapshot(all, io, sockets, managed, ThreadPool.ThreadCount, ThreadPool.PendingWorkItemCount);
    }

    /// <summary>Counts the entries of <c>/proc/self/fd</c>: all, those that are not files on disk, and sockets.</summary>
    public static (int All, int Io, int Sockets) CountDescriptors()
    {
        int all = 0, io = 0, sockets = 0;
        foreach (var entry in Directory.GetFiles("/proc/self/fd"))
        {
            all++;
            string? target;
            try
            {
                target = new FileInfo(entry).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile (e.g. the directory listing's own descriptor)
            }

            if (target is null || target.StartsWith('/'))
            {
                continue;
            }

            io++;
            if (target.StartsWith("socket:", StringComparison.Ordinal))
            {
                sockets++;
            }
        }

        return (all, io, sockets);
    }

    /// <summary>
    /// Waits (bounded) until the open descriptors are back within <see cref="IoDescriptorSlack"/>
    /// of <paramref name="baseline"/> and no thread-pool work is queued, then measures.
    /// Returns the last measurement even when it did not settle: the caller asserts on it.
    /// </summary>
    public static async Task<LifecycleSnapshot> SettleAsync(LifecycleSnapshot baseline)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < SettleBound)
        {
            if (CountDescriptors().Io <= baseline.IoDescriptors + IoDescriptorSlack && ThreadPool.PendingWorkItemCount == 0)
            {
                break;
            }

            await Task.Delay(10);
        }

        return Take();
    }

    /// <summary>Busy-waits for <paramref name="delay"/> (sub-millisecond precision, unlike Task.Delay).</summary>
    public static void SpinFor(TimeSpan delay)
    {
        var clock = Stopwatch.StartNew();
        var spinner = default(SpinWait);
        while (clock.Elapsed < delay)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>A random delay in [0, <paramref name="maximumMilliseconds"/>] ms.</summary>
    public static TimeSpan RandomDelay(Random random, double maximumMilliseconds)
        => TimeSpan.FromMilliseconds(random.NextDouble() * maximumMilliseconds);

    /// <summary>Prints the figures of a run.</summary>
    public static void Report(string what, int cycles, LifecycleSnapshot before, LifecycleSnapshot after, TimeSpan elapsed)
        => TestContext.Progress.WriteLine(
            $"{what}: {cycles} cycles in {elapsed.TotalSeconds:F2} s; before: {before}; after: {after}; "
            + $"socket/pipe/event fd delta {after.IoDescriptors - before.IoDescriptors:+0;-0;0}, managed delta {(after.ManagedBytes - before.ManagedBytes) / 1024.0:+0;-0;0} KiB");

    /// <summary>Asserts that the sockets, pipes and event descriptors are back to the baseline.</summary>
    public static void AssertDescriptorsReturned(LifecycleSnapshot before, LifecycleSnapshot after, string? context = null)
        => Assert.That(after.IoDescriptors, Is.LessThanOrEqualTo(before.IoDescriptors + IoDescriptorSlack), context + "no socket, pipe or event descriptor left open");

    /// <summary>Asserts that nothing accumulated: descriptors, queued work, threads and managed memory.</summary>
    public static void AssertNoGrowth(LifecycleSnapshot before, LifecycleSnapshot after, long managedSlackBytes, string? context = null)
    {
        var prefix = context is null ? string.Empty : context + ": ";
        using (Assert.EnterMultipleScope())
        {
            AssertDescriptorsReturned(before, after, prefix);
            Assert.That(after.PendingWorkItems, Is.LessThanOrEqualTo(2), prefix + "no work left queued on the thread pool (a leaked loop would keep rescheduling itself)");
            Assert.That(after.PoolThreads, Is.LessThanOrEqualTo(Math.Max(64, before.PoolThreads * 4)), prefix + "the thread pool did not have to keep growing (blocked or leaked work)");
            Assert.That(after.ManagedBytes - before.ManagedBytes, Is.LessThanOrEqualTo(managedSlackBytes), prefix + "managed memory did not grow beyond the slack (leaked sessions hold their pipe buffers)");
        }
    }
}
