using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>Detects that a producer stopped making progress (it waits on backpressure).</summary>
internal static class BackpressureStall
{
    /// <summary>
    /// Waits until <paramref name="progress"/> has not changed for <paramref name="quiet"/> (the
    /// producer is waiting), or until it reaches <paramref name="finish"/> (it never stalled);
    /// bounded by <see cref="TestTimeouts.Default"/>. Returns the progress it stalled at.
    /// </summary>
    public static async Task<long> UntilStalledAsync(Func<long> progress, long finish, TimeSpan quiet)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        var last = progress();
        var since = DateTime.UtcNow;
        while (true)
        {
            await Task.Delay(20);
            var now = progress();
            if (now >= finish)
            {
                return now;
            }

            if (now != last)
            {
                last = now;
                since = DateTime.UtcNow;
            }
            else if (DateTime.UtcNow - since >= quiet)
            {
                return now;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The producer neither stalled nor finished within {TestTimeouts.Default} (at {now}).");
            }
        }
    }
}
