using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>Base of the Lifecycle fixtures: fresh socket paths, deleted after each test.</summary>
public abstract class LifecycleFixture
{
    internal SocketFiles SocketFiles { get; } = new();

    [TearDown]
    public void DeleteSocketFiles() => SocketFiles.DeleteAll();
}
