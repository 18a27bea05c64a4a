using System.Runtime.CompilerServices;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// Records every exception that <see cref="TaskScheduler.UnobservedTaskException"/> reports in
/// this test process: a task that faulted and that nobody awaited is a lost error, and in a
/// session a lost error is a lost root cause. <see cref="FailOnUnobservedTaskExceptionsAttribute"/>
/// installs it and fails each test (and the run) during which one was recorded.
/// </summary>
public static class UnobservedTaskExceptions
{
    private static readonly Lock Gate = new();
    private static readonly List<Entry> Recorded = [];
    private static int _installed;

    /// <summary>Whether the hook is on the event (it stays on for the life of the process).</summary>
    public static bool IsInstalled => Volatile.Read(ref _installed) != 0;

    /// <summary>Subscribes to <see cref="TaskScheduler.UnobservedTaskException"/>; idempotent.</summary>
    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 0)
        {
            TaskScheduler.UnobservedTaskException += (_, e) => Record(e.Exception);
        }
    }

    /// <summary>A mark for <see cref="TakeFailureSince"/>: how many exceptions were recorded so far.</summary>
    public static int Mark()
    {
        lock (Gate)
        {
            return Recorded.Count;
        }
    }

    /// <summary>
    /// Runs the garbage collector and finalizers twice (a finalizer may free more): a faulted task
    /// reports its unobserved exception only when it is finalized, so this makes it surface now
    /// rather than during a later test.
    /// </summary>
    public static void ForceFinalization()
    {
        for (var round = 0; round < 2; round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    /// <summary>
    /// The failure message for the exceptions recorded since <paramref name="mark"/> and neither
    /// claimed nor reported before, or null when there are none; they count as reported from now on.
    /// </summary>
    /// <param name="mark">A value of <see cref="Mark"/> (0 for the whole run).</param>
    /// <param name="during">What ran meanwhile, for the message ("this test", "the run").</param>
    public static string? TakeFailureSince(int mark, string during)
    {
        List<Exception> found;
        lock (Gate)
        {
            var entries = Recorded.Skip(mark).Where(entry => !entry.Handled).ToList();
            entries.ForEach(entry => entry.Handled = true);
            found = [.. entries.Select(entry => (Exception)entry.Exception)];
        }

        return found.Count == 0
            ? null
            : $"{found.Count} task(s) faulted during {during} and nobody observed their exception:{Environment.NewLine}"
              + string.Join(Environment.NewLine, found.Select(exception => exception.ToString()));
    }

    /// <summary>
    /// Takes out of the record the first exception not yet claimed or reported whose inner exception is
    /// <paramref name="planted"/>, so that a test that faults a task on purpose to check this
    /// guard does not fail because of it.
    /// </summary>
    /// <param name="planted">The exception the test's task faulted with.</param>
    /// <returns>Whether it had been recorded.</returns>
    public static bool Claim(Exception planted)
    {
        lock (Gate)
        {
            foreach (var entry in Recorded)
            {
                if (!entry.Handled && entry.Exception.InnerExceptions.Any(inner => ReferenceEquals(inner, planted)))
                {
                    entry.Handled = true;
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>Records <paramref name="exception"/> as if the event had reported it (the event's own path).</summary>
    /// <param name="exception">What an unobserved task faulted with.</param>
    public static void Record(AggregateException exception)
    {
        lock (Gate)
        {
            Recorded.Add(new Entry(exception));
        }

        TestContext.Progress.WriteLine($"UNOBSERVED TASK EXCEPTION: {exception}");
    }

    /// <summary>
    /// Faults a task with <paramref name="planted"/> and drops it without observing it, as a bug
    /// that forgets to await would. Not inlined, so that no reference to the task stays on the
    /// caller's stack.
    /// </summary>
    /// <param name="planted">The exception to fault with.</param>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void FaultATaskNobodyObserves(Exception planted)
    {
        var source = new TaskCompletionSource();
        source.SetException(planted);
    }

    private sealed class Entry(AggregateException exception)
    {
        public AggregateException Exception { get; } = exception;

        public bool Handled { get; set; }
    }
}
