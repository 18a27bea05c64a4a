using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary>Checks once that the tool is built, and kills any aqmp process a test left behind.</summary>
[SetUpFixture]
public sealed class ProcessSafetyNet
{
    [OneTimeSetUp]
    public void FindTheTool() => TestContext.Progress.WriteLine($"aqmp tool: {string.Join(' ', AqmpProcess.CommandWords)}");

    [OneTimeTearDown]
    public void KillLeftovers()
    {
        var killed = AqmpProcess.KillAll();
        Assert.That(killed, Is.Zero, $"{killed} aqmp process(es) were still running after the tests; killed.");
    }
}
