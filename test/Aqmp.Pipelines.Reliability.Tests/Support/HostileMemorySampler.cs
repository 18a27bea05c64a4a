namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// Measures what the process retains and allocates while hostile traffic runs, independently of
/// when the garbage collector would have run on its own (its gen0 budget follows the CPU's cache
/// size, so garbage not yet collected is a property of the host, not of the library). A dedicated
/// thread (so that a busy thread pool cannot starve it) forces a full blocking collection every
/// few milliseconds and records the heap that survived it: the peak of what was live. Allocation
/// is counted precisely across all threads.
/// </summary>
/// <remarks>GC figures are process-wide: only fixtures marked <c>[NonParallelizable]</c> may use this.</remarks>
internal sealed class HostileMemorySampler : IDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(5);

    private readonly Thread _thread;
    private readonly long _allocatedAtStart;
    private readonly long _peakWorkingSetAtStart;
    private volatile bool _stopping;
    private long _peakLive;
    private long _samples;

    private HostileMemorySampler()
    {
        Baseline = ProcessResources.SettledManagedBytes();
        _peakWorkingSetAtStart = ProcessResources.PeakWorkingSet();
        _allocatedAtStart = GC.GetTotalAllocatedBytes(precise: true);
        _peakLive = Baseline;
        _thread = new Thread(Run) { IsBackground = true, Name = "memory sampler" };
        _thread.Start();
    }

    /// <summary>Managed heap after a full collection, before the measured work.</summary>
    public long Baseline { get; }

    /// <summary>Peak of the heap that survived a full collection, above <see cref="Baseline"/>.</summary>
    public long PeakLiveGrowth => Interlocked.Read(ref _peakLive) - Baseline;

    /// <summary>Bytes allocated by all threads of the process since the start (precise).</summary>
    public long Allocated => GC.GetTotalAllocatedBytes(precise: true) - _allocatedAtStart;

    /// <summary>Starts sampling after a full collection.</summary>
    public static HostileMemorySampler Start() => new();

    /// <summary>Samples now, on the calling thread, and returns the live growth at this moment.</summary>
    public long LiveGrowthNow() => Sample() - Baseline;

    /// <summary>
    /// Records <see cref="LiveGrowthNow"/> the moment <paramref name="protocol"/> enters
    /// <see cref="Session.Runstate.Disconnecting"/> (synchronously, on the thread that ends the
    /// session, before it lets go of anything it buffered): what the session held when it ended.
    /// </summary>
    public Func<long> LiveGrowthWhenDisconnecting<TMessage>(Session.PipeProtocol<TMessage> protocol)
    {
        var atEnd = -1L;
        protocol.RunstateChanged += (_, change) =>
        {
            if (change.Current == Session.Runstate.Disconnecting)
            {
                Interlocked.CompareExchange(ref atEnd, LiveGrowthNow(), -1L);
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
        => $"managed baseline {Mib(Baseline)}, peak live growth {Mib(PeakLiveGrowth)} (after full collections), "
           + $"allocated {Mib(Allocated)}, gen0/1/2 collections {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}, "
           + $"{Interlocked.Read(ref _samples)} samples, peak working set {Mib(_peakWorkingSetAtStart)} -> {Mib(ProcessResources.PeakWorkingSet())}";

    /// <summary>Bytes as MiB with two decimals.</summary>
    public static string Mib(long bytes) => $"{bytes / (1024.0 * 1024.0):F2} MiB";

    public void Dispose() => Stop();

    private void Run()
    {
        while (!_stopping)
        {
            Sample();
            Thread.Sleep(Interval);
        }
    }

    /// <summary>Forces a full blocking collection and records what survived it.</summary>
    private long Sample()
    {
        GC.Collect();
        var live = GC.GetTotalMemory(forceFullCollection: false);
        Interlocked.Increment(ref _samples);
        var current = Interlocked.Read(ref _peakLive);
        while (live > current)
        {
            var seen = Interlocked.CompareExchange(ref _peakLive, live, current);
            if (seen == current)
            {
                break;
            }

            current = seen;
        }

        return live;
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
