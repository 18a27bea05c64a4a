using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>Race-free waiting for a runstate that may already have been reached.</summary>
internal static class RunstateWaits
{
    /// <summary>Completes once <paramref name="protocol"/> is in <paramref name="target"/> (now or later), bounded by the test timeout.</summary>
    public static async Task UntilRunstateAsync<TMessage>(this PipeProtocol<TMessage> protocol, Runstate target)
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        while (true)
        {
            // Subscribe before reading the state, so a transition in between is not missed.
            var change = protocol.WaitForRunstateChangeAsync(timeout.Token);
            if (protocol.Runstate == target)
            {
                return;
            }

            await change;
        }
    }
}
