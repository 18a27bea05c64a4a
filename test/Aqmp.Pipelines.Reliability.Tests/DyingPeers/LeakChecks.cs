namespace Aqmp.Pipelines.Reliability.Tests.DyingPeers;

/// <summary>Checks that a session left no socket open behind it.</summary>
/// <remarks>
/// Counts the process's socket descriptors (<c>/proc/self/fd</c> entries that link to
/// <c>socket:[…]</c>) rather than all descriptors: the runtime maps assemblies and symbol files
/// lazily (formatting an exception's stack trace opens a few), which is not a session's leak.
/// </remarks>
internal static class LeakChecks
{
    /// <summary>How many sockets this process holds open.</summary>
    public static int OpenSockets()
    {
        var count = 0;
        foreach (var path in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(path).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true)
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // Closed meanwhile.
            }
        }

        return count;
    }

    /// <summary>
    /// Waits (bounded, 3 s) until the process holds no more sockets than <paramref name="baseline"/>:
    /// a socket still open after DisconnectAsync means a transport outlived its session.
    /// </summary>
    public static async Task UntilSocketsReturnToAsync(int baseline, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        int open;
        while ((open = OpenSockets()) > baseline && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.That(open, Is.LessThanOrEqualTo(baseline), $"{what}: open sockets back to the baseline of {baseline}");
    }
}
