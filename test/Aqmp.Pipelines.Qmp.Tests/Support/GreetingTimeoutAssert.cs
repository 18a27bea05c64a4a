using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Qmp.Tests.Support;

/// <summary>What a connect that got no greeting in time raises.</summary>
internal static class GreetingTimeoutAssert
{
    /// <summary>
    /// A <see cref="QmpNegotiationException"/> for the session phase, wrapping a
    /// <see cref="TimeoutException"/>, whose message says no greeting came within
    /// <paramref name="seconds"/> and that another client may hold the monitor.
    /// </summary>
    public static void IsNoGreeting(QmpNegotiationException? error, string seconds)
    {
        Assert.That(error, Is.Not.Null);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(error!.ErrorMessage, Is.EqualTo(ConnectException.SessionPhase));
            Assert.That(error.InnerException, Is.InstanceOf<TimeoutException>());
            Assert.That(error.Reason, Is.EqualTo($"no QMP greeting within {seconds}: another client may hold the monitor (QEMU serves one client per monitor)"));
            Assert.That(error.Message, Does.StartWith($"Failed to establish session: QMP negotiation failed: no QMP greeting within {seconds}: another client may hold the monitor"));
        }
    }
}
