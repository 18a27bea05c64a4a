using System.Runtime.InteropServices;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// Lowers this process's soft limit of open file descriptors (<c>RLIMIT_NOFILE</c>, Linux) so that
/// only a few more can be opened, and restores it when disposed.
/// </summary>
internal sealed partial class DescriptorLimit : IDisposable
{
    private const int RlimitNofile = 7;

    private readonly RLimit _saved;

    private DescriptorLimit(RLimit saved) => _saved = saved;

    /// <summary>
    /// Sets the soft limit so that exactly <paramref name="free"/> descriptor numbers below it are
    /// unused now: the next <paramref name="free"/> opens succeed, the one after fails with EMFILE.
    /// </summary>
    /// <param name="free">How many descriptors may still be opened.</param>
    /// <returns>The scope that restores the previous soft limit.</returns>
    /// <exception cref="InvalidOperationException">getrlimit or setrlimit failed, or the hard limit is too low.</exception>
    public static DescriptorLimit LeaveFree(int free)
    {
        Check(GetRLimit(RlimitNofile, out var saved), "getrlimit");
        var open = Directory.GetFiles("/proc/self/fd").Select(path => int.Parse(Path.GetFileName(path))).ToHashSet();
        var limit = 0;
        for (var unused = 0; unused < free; limit++)
        {
            if (!open.Contains(limit))
            {
                unused++;
            }
        }

        if ((ulong)limit > saved.Maximum)
        {
            throw new InvalidOperationException($"The hard descriptor limit {saved.Maximum} is below the {limit} needed.");
        }

        Check(SetRLimit(RlimitNofile, new RLimit { Current = (ulong)limit, Maximum = saved.Maximum }), "setrlimit");
        return new DescriptorLimit(saved);
    }

    /// <summary>Restores the soft limit saved when the scope began.</summary>
    public void Dispose() => Check(SetRLimit(RlimitNofile, _saved), "setrlimit");

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw new InvalidOperationException($"{call} failed: errno {Marshal.GetLastPInvokeError()}.");
        }
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, out RLimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRLimit(int resource, in RLimit limit);

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }
}
