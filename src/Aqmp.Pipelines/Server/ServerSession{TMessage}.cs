using System.Diagnostics;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Server;

/// <summary>
/// A server's record of one accepted connection, from accept to its end: its session once the
/// factory made one, what asked it to end, and its activity (counted per read and per sent batch,
/// for the idle timeout and the byte metrics).
/// </summary>
/// <remarks>
/// Nothing waits on a running session: the end is started, once, by whichever comes second of
/// <see cref="MarkRunning"/> and the first request to end (<see cref="Request"/>,
/// <see cref="EndedByItself"/>), through <paramref name="ended"/>.
/// </remarks>
/// <param name="info">The connection.</param>
/// <param name="metrics">Where reads and sends are counted.</param>
/// <param name="ended">Starts the end of the running session (called once, possibly under the session's lock: it must only start work).</param>
internal sealed class ServerSession<TMessage>(ServerConnectionInfo info, ServerMetrics metrics, Action<ServerSession<TMessage>> ended) : TransportActivity, IRunstateObserver
{
    /// <summary>No end asked for yet.</summary>
    private const int NoEnd = 0;

    /// <summary>The session left <see cref="Runstate.Running"/> by itself.</summary>
    private const int EndedItself = -1;

    /// <summary>A stage bit: the session runs (its handshake is done).</summary>
    private const int RunningStage = 1;

    /// <summary>A stage bit: something asked it to end, or it ended by itself.</summary>
    private const int EndStage = 2;

    private long _reads;
    private long _sends;
    private int _end;
    private int _stages;

    public ServerConnectionInfo Info { get; } = info;

    /// <summary>When it was accepted.</summary>
    public long AcceptedAt { get; } = Stopwatch.GetTimestamp();

    /// <summary>The session, once the factory made it.</summary>
    public PipeProtocol<TMessage>? Protocol { get; set; }

    /// <summary>Whether its session is running (its handshake is done).</summary>
    public bool IsRunning => (Volatile.Read(ref _stages) & RunningStage) != 0;

    /// <summary>The reason the server asked it to end with, or null when it ended by itself (or nothing asked).</summary>
    public SessionEndReason? RequestedReason => Volatile.Read(ref _end) is > NoEnd and var end ? (SessionEndReason)(end - 1) : null;

    /// <summary>Reads and sends so far; the idle sweep compares it between turns.</summary>
    public long Activity => Volatile.Read(ref _reads) + Volatile.Read(ref _sends);

    /// <summary>The activity the idle sweep saw last; the sweep's own.</summary>
    public long SeenActivity { get; set; } = -1;

    /// <summary>When the idle sweep saw the activity change last; the sweep's own.</summary>
    public long SeenActiveAt { get; set; }

    /// <summary>
    /// Marks the session running (a full fence: a shutdown that begins at the same time sees it, or
    /// it sees the shutdown); starts its end if one was asked for already.
    /// </summary>
    public void MarkRunning() => Reach(RunningStage);

    /// <summary>Asks it to end with <paramref name="reason"/>, unless something asked first or it ended by itself.</summary>
    /// <param name="reason">Why.</param>
    public void Request(SessionEndReason reason)
    {
        if (Interlocked.CompareExchange(ref _end, (int)reason + 1, NoEnd) == NoEnd)
        {
            Reach(EndStage);
        }
    }

    /// <summary>Watches the session's runstate: leaving <see cref="Runstate.Running"/> is its end.</summary>
    /// <param name="current">The runstate entered.</param>
    public void RunstateEntered(Runstate current)
    {
        if (current != Runstate.Running)
        {
            EndedByItself();
        }
    }

    /// <summary>Records that the session left <see cref="Runstate.Running"/> by itself.</summary>
    public void EndedByItself()
    {
        if (Interlocked.CompareExchange(ref _end, EndedItself, NoEnd) == NoEnd)
        {
            Reach(EndStage);
        }
    }

    /// <summary>Records a stage (each is reached once); the second of the two starts the end.</summary>
    private void Reach(int stage)
    {
        if (Interlocked.Or(ref _stages, stage) == (RunningStage | EndStage) - stage)
        {
            ended(this);
        }
    }

    /// <inheritdoc />
    public override void Received(int bytes)
    {
        Volatile.Write(ref _reads, _reads + 1);
        metrics.Received(bytes);
    }

    /// <inheritdoc />
    public override void Sent(long bytes)
    {
        Volatile.Write(ref _sends, _sends + 1);
        metrics.Sent(bytes);
    }
}
