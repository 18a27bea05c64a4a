using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The clients a simulator serves at once, each a monitor of the one simulated machine: the slots
/// that bound how many accepted clients are served together, and the events every negotiated
/// client receives (QEMU sends each event to all of its QMP monitors in command mode).
/// </summary>
/// <param name="maximumAccepted">How many accepted clients are served at once.</param>
internal sealed class ConnectedClients(int maximumAccepted)
{
    private readonly SemaphoreSlim _slots = new(maximumAccepted, maximumAccepted);
    private readonly Lock _lock = new();
    private readonly List<QmpServerSession> _sessions = [];

    /// <summary>Waits until fewer than the maximum of accepted clients are served.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>A task that completes when the caller holds a slot; give it back with <see cref="ReleaseSlot"/>.</returns>
    public Task WaitForSlotAsync(CancellationToken cancellationToken) => _slots.WaitAsync(cancellationToken);

    /// <summary>Gives back a slot taken with <see cref="WaitForSlotAsync"/>.</summary>
    public void ReleaseSlot() => _slots.Release();

    /// <summary>Counts a session among the connected clients until <see cref="Remove"/>.</summary>
    /// <param name="session">The session.</param>
    public void Add(QmpServerSession session)
    {
        lock (_lock)
        {
            _sessions.Add(session);
        }
    }

    /// <summary>Removes a session that ended.</summary>
    /// <param name="session">The session.</param>
    public void Remove(QmpServerSession session)
    {
        lock (_lock)
        {
            _sessions.Remove(session);
        }
    }

    /// <summary>The sessions connected now.</summary>
    /// <returns>A copy of the set.</returns>
    public QmpServerSession[] Snapshot()
    {
        lock (_lock)
        {
            return [.. _sessions];
        }
    }

    /// <summary>
    /// Sends <paramref name="message"/> to every negotiated client and waits until each has it
    /// queued, or has gone.
    /// </summary>
    /// <param name="message">The event.</param>
    /// <param name="cancellationToken">Stops waiting for a client's queue space.</param>
    /// <returns>Whether at least one client had it queued.</returns>
    public async ValueTask<bool> SendToAllAsync(QmpMessage message, CancellationToken cancellationToken)
    {
        var sent = false;
        foreach (var session in Snapshot())
        {
            if (session.HasNegotiated)
            {
                sent |= await SendQuietlyAsync(session, message, cancellationToken).ConfigureAwait(false);
            }
        }

        return sent;
    }

    /// <summary>
    /// Sends <paramref name="message"/> to every negotiated client but <paramref name="origin"/>
    /// without waiting for them, so that a client that does not read holds up neither the command
    /// that raised the event nor the other clients; each client receives the events in the order
    /// they were raised.
    /// </summary>
    /// <param name="origin">The session whose command raised the event (it sends the event itself, before its reply).</param>
    /// <param name="message">The event.</param>
    public void SendToOthers(QmpServerSession origin, QmpMessage message)
    {
        foreach (var session in Snapshot())
        {
            if (session != origin && session.HasNegotiated)
            {
                _ = SendQuietlyAsync(session, message, CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// Queues an event to one client; false when the client went away, the simulator is stopping,
    /// or the client's session failed (it ends with its own error). Faults only when
    /// <paramref name="cancellationToken"/> cancels it.
    /// </summary>
    private static async Task<bool> SendQuietlyAsync(QmpServerSession session, QmpMessage message, CancellationToken cancellationToken)
    {
        try
        {
            await session.EmitAsync(message, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
