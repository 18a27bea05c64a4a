using System.Collections.Concurrent;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// Runs once around the whole reliability suite: any task that faults without anyone observing
/// its exception during the run fails the run (a lost error is a lost root cause).
/// </summary>
[SetUpFixture]
public sealed class ReliabilityRun
{
    private static readonly ConcurrentQueue<Exception> Unobserved = new();

    /// <summary>Every exception seen by <see cref="TaskScheduler.UnobservedTaskException"/> so far.</summary>
    public static IReadOnlyCollection<Exception> UnobservedExceptions => Unobserved;

    [OneTimeSetUp]
    public void HookUnobservedTaskExceptions() => TaskScheduler.UnobservedTaskException += OnUnobserved;

    [OneTimeTearDown]
    public void FailOnUnobservedTaskExceptions()
    {
        // Unobserved exceptions are reported when their task is finalized: collect until none are left.
        ForceFinalization();
        TaskScheduler.UnobservedTaskException -= OnUnobserved;
        Assert.That(Unobserved, Is.Empty, "tasks faulted and nobody observed their exception");
    }

    /// <summary>Runs the garbage collector and finalizers twice, so that unobserved task exceptions surface now.</summary>
    public static void ForceFinalization()
    {
        for (var i = 0; i < 2; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
    }

    private static void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
    {
        Unobserved.Enqueue(e.Exception);
        TestContext.Progress.WriteLine($"UNOBSERVED TASK EXCEPTION: {e.Exception}");
    }
}
