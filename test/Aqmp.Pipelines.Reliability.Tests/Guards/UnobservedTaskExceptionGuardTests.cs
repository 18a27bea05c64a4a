using Aqmp.Pipelines.Tests.Support;
using NUnit.Framework.Internal;

namespace Aqmp.Pipelines.Reliability.Tests.Guards;

/// <summary>
/// The guard that fails a test during which a task faulted and nobody observed its exception
/// (<see cref="FailOnUnobservedTaskExceptionsAttribute"/>, on this assembly) is on for every test
/// of this project, and its check fails such a test. Each test faults a task on purpose; the
/// fixture does not run beside others, so that no other test is blamed for it.
/// </summary>
[NonParallelizable]
public sealed class UnobservedTaskExceptionGuardTests
{
    [Test]
    public void A_task_that_faults_unobserved_during_any_test_of_this_project_reaches_the_guard()
    {
        var planted = new InvalidOperationException("planted: a task nobody awaits");

        UnobservedTaskExceptions.FaultATaskNobodyObserves(planted);
        UnobservedTaskExceptions.ForceFinalization();

        Assert.That(UnobservedTaskExceptions.IsInstalled, Is.True, "the assembly's guard installed the hook before this test");
        Assert.That(UnobservedTaskExceptions.Claim(planted), Is.True, "the hook recorded the planted exception (claimed here, so that this test passes)");
    }

    [Test]
    public void The_guards_check_after_a_test_fails_that_test_naming_the_exception_nobody_observed()
    {
        var guard = new FailOnUnobservedTaskExceptionsAttribute();
        var test = TestExecutionContext.CurrentContext.CurrentTest;
        var planted = new InvalidOperationException("planted: a task nobody awaits");

        guard.BeforeTest(test);
        UnobservedTaskExceptions.FaultATaskNobodyObserves(planted);
        var failure = Assert.Throws<AssertionException>(() => guard.AfterTest(test));

        Assert.That(failure!.Message, Does.Contain("1 task(s) faulted during this test and nobody observed their exception").And.Contain(planted.Message));
    }

    [Test]
    public void The_guards_check_after_a_test_passes_a_test_whose_faulted_tasks_were_all_observed()
    {
        var guard = new FailOnUnobservedTaskExceptionsAttribute();
        var test = TestExecutionContext.CurrentContext.CurrentTest;

        guard.BeforeTest(test);
        var observed = Task.FromException(new InvalidOperationException("observed"));
        Assert.That(observed.Exception, Is.Not.Null, "reading Exception observes it");
        observed = null;
        Assert.DoesNotThrow(() => guard.AfterTest(test));
        GC.KeepAlive(observed);
    }
}
