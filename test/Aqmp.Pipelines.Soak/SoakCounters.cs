using System.Collections.Concurrent;

namespace Aqmp.Pipelines.Soak;

/// <summary>
/// The soak's accounting, shared by every lane. Every execute that was called ends in exactly one
/// of: received (its reply came back with the content sent), interrupted (it failed with one of the
/// errors the client documents for a session that ends or an execute that is cancelled), or lost
/// (it hung past the watchdog, came back with the wrong content, or failed with anything else).
/// </summary>
internal sealed class SoakCounters
{
    private readonly ConcurrentDictionary<string, long> _interruptedBy = new();
    private readonly ConcurrentDictionary<string, long> _faultsBy = new();
    private readonly ConcurrentQueue<string> _losses = new();
    private long _sent;
    private long _received;
    private long _interrupted;
    private long _lost;
    private long _reconnects;
    private long _hangs;

    public long Sent => Interlocked.Read(ref _sent);

    public long Received => Interlocked.Read(ref _received);

    public long Interrupted => Interlocked.Read(ref _interrupted);

    public long Lost => Interlocked.Read(ref _lost);

    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>Operations (executes, connects, disconnects) that exceeded the watchdog.</summary>
    public long Hangs => Interlocked.Read(ref _hangs);

    public long FaultsInjected => _faultsBy.Values.Sum();

    /// <summary>The first few losses, described (the rest are only counted).</summary>
    public IReadOnlyCollection<string> Losses => _losses;

    public void CountSent() => Interlocked.Increment(ref _sent);

    public void CountReceived() => Interlocked.Increment(ref _received);

    public void CountInterrupted(string why)
    {
        Interlocked.Increment(ref _interrupted);
        _interruptedBy.AddOrUpdate(why, 1, (_, n) => n + 1);
    }

    public void CountLost(string why)
    {
        Interlocked.Increment(ref _lost);
        if (_losses.Count < 20)
        {
            _losses.Enqueue(why);
        }
    }

    public void CountHang(string what)
    {
        Interlocked.Increment(ref _hangs);
        if (_losses.Count < 20)
        {
            _losses.Enqueue("hang: " + what);
        }
    }

    public void CountFault(string kind) => _faultsBy.AddOrUpdate(kind, 1, (_, n) => n + 1);

    public void CountReconnect() => Interlocked.Increment(ref _reconnects);

    public string InterruptedBreakdown => Breakdown(_interruptedBy);

    public string FaultBreakdown => Breakdown(_faultsBy);

    private static string Breakdown(ConcurrentDictionary<string, long> counts)
        => counts.IsEmpty ? "none" : string.Join(", ", counts.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key} {c.Value}"));
}
