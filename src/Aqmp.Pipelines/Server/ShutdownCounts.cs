namespace Aqmp.Pipelines.Server;

/// <summary>Counts how connections end once a shutdown has begun: the figures of its <see cref="ServerShutdownResult"/>.</summary>
internal sealed class ShutdownCounts
{
    private int _drained;
    private int _aborted;
    private int _handshakesCancelled;

    /// <summary>Counts one connection's end.</summary>
    /// <param name="reason">Why it ended.</param>
    /// <param name="ran">Whether its session had been running.</param>
    public void Count(SessionEndReason reason, bool ran)
    {
        if (!ran)
        {
            if (reason is not SessionEndReason.Refused)
            {
                Interlocked.Increment(ref _handshakesCancelled);
            }
        }
        else if (reason == SessionEndReason.Aborted)
        {
            Interlocked.Increment(ref _aborted);
        }
        else
        {
            Interlocked.Increment(ref _drained);
        }
    }

    /// <summary>The figures so far.</summary>
    /// <returns>The result.</returns>
    public ServerShutdownResult ToResult() => new(Volatile.Read(ref _drained), Volatile.Read(ref _aborted), Volatile.Read(ref _handshakesCancelled));
}
