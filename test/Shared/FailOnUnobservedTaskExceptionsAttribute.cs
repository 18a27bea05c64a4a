using System.Collections.Concurrent;
using NUnit.Framework.Interfaces;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// Put on a test assembly (<c>[assembly: FailOnUnobservedTaskExceptions]</c>): installs
/// <see cref="UnobservedTaskExceptions"/> before the first test, and fails every test during which
/// a task faulted without anyone observing its exception (finalizers are run after each test so
/// that such a task reports now, not during a later test), and the whole run if one surfaces
/// after the last test. Under parallel fixtures a test may be blamed for a task of a fixture that
/// ran beside it; the message lists the exceptions, which say whose they are.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
public sealed class FailOnUnobservedTaskExceptionsAttribute : Attribute, ITestAction
{
    private readonly ConcurrentDictionary<string, int> _marks = new();

    /// <inheritdoc />
    public ActionTargets Targets => ActionTargets.Test | ActionTargets.Suite;

    /// <inheritdoc />
    public void BeforeTest(ITest test)
    {
        if (IsRun(test))
        {
            UnobservedTaskExceptions.Install();
        }

        if (IsRun(test) || !test.IsSuite)
        {
            _marks[test.Id] = UnobservedTaskExceptions.Mark();
        }
    }

    /// <inheritdoc />
    public void AfterTest(ITest test)
    {
        if (!IsRun(test) && test.IsSuite)
        {
            return;
        }

        UnobservedTaskExceptions.ForceFinalization();
        _marks.TryRemove(test.Id, out var mark);
        if (UnobservedTaskExceptions.TakeFailureSince(mark, IsRun(test) ? "the run" : "this test") is { } failure)
        {
            Assert.Fail(failure);
        }
    }

    private static bool IsRun(ITest test) => test.TestType == "Assembly";
}
