using System.Diagnostics;
using System.Net.Sockets;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Server;

/// <summary>
/// A server's record of one accepted connection, from accept to its end: its session once the
/// factory made one, what asked it to end, and its activity (counted per read and per sent batch,
/// for the idle timeout and the byte metrics).
/// </summary>
internal sealed class ServerSession<TMessage>(ServerConnectionInfo info, Socket socket, ServerMetrics metrics) : TransportActivity
{
    /// <summary>No end asked for yet.</summary>
    private const int NoEnd = 0;

    /// <summary>The session left <see cref="Runstate.Running"/> by itself.</summary>
    private const int EndedItself = -1;

    private readonly TaskCompletionSource _endRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _reads;
    private long _sends;
    private int _end;
    private int _running;

    public ServerConnectionInfo Info { get; } = info;

    /// <summary>The accepted socket, owned by this record until a connection takes it.</summary>
    public Socket Socket { get; } = socket;

    /// <summary>When it was accepted.</summary>
    public long AcceptedAt { get; } = Stopwatch.GetTimestamp();

    /// <summary>The session, once the factory made it.</summary>
    public PipeProtocol<TMessage>? Protocol { get; set; }

    /// <summary>The task serving it; completes when it ended and was counted.</summary>
    public Task Served { get; set; } = Task.CompletedTask;

    /// <summary>Whether its session is running (its handshake is done).</summary>
    public bool IsRunning => Volatile.Read(ref _running) != 0;

    /// <summary>Completes when something asked it to end, or it left <see cref="Runstate.Running"/> by itself.</summary>
    public Task EndRequested => _endRequested.Task;

    /// <summary>The reason the server asked it to end with, or null when it ended by itself (or nothing asked).</summary>
    public SessionEndReason? RequestedReason => Volatile.Read(ref _end) is > NoEnd and var end ? (SessionEndReason)(end - 1) : null;

    /// <summary>Reads and sends so far; the idle sweep compares it between turns.</summary>
    public long Activity => Volatile.Read(ref _reads) + Volatile.Read(ref _sends);

    /// <summary>The activity the idle sweep saw last; the sweep's own.</summary>
    public long SeenActivity { get; set; } = -1;

    /// <summary>When the idle sweep saw the activity change last; the sweep's own.</summary>
    public long SeenActiveAt { get; set; }

    /// <summary>Marks the session running (a full fence: a shutdown that begins at the same time sees it, or it sees the shutdown).</summary>
    public void MarkRunning() => Interlocked.Exchange(ref _running, 1);

    /// <summary>Asks it to end with <paramref name="reason"/>, unless something asked first or it ended by itself.</summary>
    /// <param name="reason">Why.</param>
    public void Request(SessionEndReason reason)
    {
        if (Interlocked.CompareExchange(ref _end, (int)reason + 1, NoEnd) == NoEnd)
        {
            _endRequested.TrySetResult();
        }
    }

    /// <summary>Watches the session's runstate: leaving <see cref="Runstate.Running"/> is its end.</summary>
    /// <param name="sender">The session.</param>
    /// <param name="e">The change.</param>
    public void OnRunstateChanged(object? sender, RunstateChangedEventArgs e)
    {
        if (e.Current != Runstate.Running)
        {
            EndedByItself();
        }
    }

    /// <summary>Records that the session left <see cref="Runstate.Running"/> by itself.</summary>
    public void EndedByItself()
    {
        Interlocked.CompareExchange(ref _end, EndedItself, NoEnd);
        _endRequested.TrySetResult();
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
