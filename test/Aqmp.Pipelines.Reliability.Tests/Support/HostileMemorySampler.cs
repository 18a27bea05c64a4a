namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// Samples the process's managed memory on a dedicated thread (so that a busy thread pool cannot
/// starve it) every millisecond or so, from a settled baseline: the peak of
/// <see cref="GC.GetTotalMemory(bool)"/> (live objects plus garbage not yet collected) and the
/// peak heap size right after a collection (<see cref="GCMemoryInfo.HeapSizeBytes"/> minus
/// fragmentation: what survived, a measure of retention).
/// </summary>
/// <remarks>GC figures are process-wide: only fixtures marked <c>[NonParallelizable]</c> may use this.</remarks>
internal sealed class HostileMemorySampler : IDisposable
{
    private readonly Thread _thread;
    private readonly long _allocatedAtStart;
    private readonly long _peakWorkingSetAtStart;
    private volatile bool _stopping;
    private long _peakTotal;
    private long _peakAfterGc;
    private long _samples;

    private HostileMemorySampler()
    {
        Baseline = ProcessResources.SettledManagedBytes();
        _peakWorkingSetAtStart = ProcessResources.PeakWorkingSet();
        _allocatedAtStart = GC.GetTotalAllocatedBytes(precise: false);
        _peakTotal = Baseline;
        _peakAfterGc = Baseline;
        _thread = new Thread(Run) { IsBackground = true, Name = "memory sampler" };
        _thread.Start();
    }

    /// <summary>Managed heap after a full collection, before the measured work.</summary>
    public long Baseline { get; }

    /// <summary>Peak of <see cref="GC.GetTotalMemory(bool)"/> above <see cref="Baseline"/>.</summary>
    public long PeakGrowth => Interlocked.Read(ref _peakTotal) - Baseline;

    /// <summary>Peak post-collection heap (less fragmentation) above <see cref="Baseline"/>.</summary>
    public long PeakRetainedGrowth => Interlocked.Read(ref _peakAfterGc) - Baseline;

    /// <summary>Bytes allocated by the whole process since the start.</summary>
    public long Allocated => GC.GetTotalAllocatedBytes(precise: false) - _allocatedAtStart;

    /// <summary>Starts sampling after a full collection.</summary>
    public static HostileMemorySampler Start() => new();

    /// <summary>Samples now, on the calling thread, and returns <see cref="PeakGrowth"/> so far.</summary>
    public long Snapshot()
    {
        Sample();
        return PeakGrowth;
    }

    /// <summary>
    /// Records <see cref="Snapshot"/> the moment <paramref name="protocol"/> enters
    /// <see cref="Session.Runstate.Disconnecting"/> (synchronously, on the thread that ends the
    /// session): the peak growth up to the moment the session ended.
    /// </summary>
    public Func<long> PeakGrowthWhenDisconnecting<TMessage>(Session.PipeProtocol<TMessage> protocol)
    {
        var atEnd = -1L;
        protocol.RunstateChanged += (_, change) =>
        {
            if (change.Current == Session.Runstate.Disconnecting)
            {
                Interlocked.CompareExchange(ref atEnd, Snapshot(), -1L);
            }
        };
        return () => Interlocked.Read(ref atEnd);
    }

    /// <summary>Takes a last sample and stops the thread; idempotent.</summary>
    public void Stop()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        _thread.Join();
        Sample();
    }

    /// <summary>One line of figures for the test output.</summary>
    public string Describe()
        => $"managed baseline {Mib(Baseline)}, peak growth {Mib(PeakGrowth)} (GetTotalMemory), "
           + $"peak post-GC growth {Mib(PeakRetainedGrowth)}, allocated {Mib(Allocated)}, "
           + $"gen0/1/2 collections {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}, "
           + $"{Interlocked.Read(ref _samples)} samples, peak working set {Mib(_peakWorkingSetAtStart)} -> {Mib(ProcessResources.PeakWorkingSet())}";

    /// <summary>Bytes as MiB with two decimals.</summary>
    public static string Mib(long bytes) => $"{bytes / (1024.0 * 1024.0):F2} MiB";

    public void Dispose() => Stop();

    private void Run()
    {
        while (!_stopping)
        {
            Sample();
            Thread.Sleep(1);
        }
    }

    private void Sample()
    {
        Max(ref _peakTotal, GC.GetTotalMemory(forceFullCollection: false));
        var info = GC.GetGCMemoryInfo(GCKind.Any);
        if (info.Index > 0)
        {
            Max(ref _peakAfterGc, info.HeapSizeBytes - info.FragmentedBytes);
        }

        Interlocked.Increment(ref _samples);
    }

    private static void Max(ref long peak, long value)
    {
        var current = Interlocked.Read(ref peak);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref peak, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}

/// <summary>Open descriptors of this process by kind.</summary>
internal static class HostileDescriptors
{
    /// <summary>
    /// How many socket descriptors this process has open (entries of <c>/proc/self/fd</c> linking
    /// to <c>socket:[…]</c>). Unlike the total, this does not move when the runtime maps an
    /// assembly file, so it shows socket leaks exactly.
    /// </summary>
    public static int OpenSockets()
    {
        var count = 0;
        foreach (var entry in Directory.EnumerateFiles("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(entry).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true)
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // Closed while enumerating.
            }
        }

        return count;
    }
}
