using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// Base of the Lifecycle fixtures: fresh socket paths deleted after each test, and a check after
/// each test that no task faulted unobserved during it (the run-wide hook of
/// <see cref="ReliabilityRun"/> would report it only at the end, without saying which test).
/// </summary>
public abstract class LifecycleFixture
{
    private int _unobservedBefore;

    internal SocketFiles SocketFiles { get; } = new();

    [SetUp]
    public void RememberUnobservedCount()
    {
        ReliabilityRun.ForceFinalization();
        _unobservedBefore = ReliabilityRun.UnobservedExceptions.Count;
    }

    [TearDown]
    public void FailOnUnobservedTaskExceptionsAndDeleteSocketFiles()
    {
        SocketFiles.DeleteAll();
        ReliabilityRun.ForceFinalization();
        Assert.That(ReliabilityRun.UnobservedExceptions.Count, Is.EqualTo(_unobservedBefore), "no task faulted unobserved during this test");
    }
}
