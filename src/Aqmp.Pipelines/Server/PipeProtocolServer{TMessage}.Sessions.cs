using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Server;

// Serving one connection: handshake under the deadline, run until something ends it, count the end.
public sealed partial class PipeProtocolServer<TMessage>
{
    /// <summary>Fires at shutdown: handshakes under way are dropped.</summary>
    private readonly CancellationTokenSource _stopHandshakes = new();

    /// <summary>Fires at the shutdown deadline: drains still under way are abandoned.</summary>
    private readonly CancellationTokenSource _abortSessions = new();

    private readonly Task _idleSweep = Task.CompletedTask;

    /// <summary>Starts the end of a running session (see <see cref="ServerSession{TMessage}"/>); made once, shared by all.</summary>
    private readonly Action<ServerSession<TMessage>> _endSession;

    /// <summary>Connections accepted and not yet finished (counted and told); the shutdown waits for none to be left.</summary>
    private int _unfinished;

    /// <summary>Completed when no connection is left unfinished once the shutdown has begun.</summary>
    private readonly TaskCompletionSource _allFinished = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Serves one connection up to running: the handshake, then the watch on its runstate. Nothing
    /// waits while it runs; its end (<see cref="EndRunningAsync"/>) starts when something asks for
    /// it or it leaves <see cref="Runstate.Running"/> by itself. Never faults.
    /// </summary>
    private async Task ServeAsync(ServerSession<TMessage> session, Socket socket, SslServerAuthenticationOptions? tls)
    {
        // Off the accept loop, on the thread pool, as Task.Run would start it, without the task it makes.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        var protocol = await HandshakeAsync(session, socket, tls).ConfigureAwait(false);
        if (protocol is null)
        {
            return;
        }

        Interlocked.Increment(ref _running);
        protocol.RunstateObserver = session;
        session.MarkRunning();
        if (protocol.Runstate != Runstate.Running)
        {
            session.EndedByItself();
        }

        if (_stopHandshakes.IsCancellationRequested)
        {
            // The shutdown began while this handshake completed: it may not have seen the session running.
            session.Request(SessionEndReason.Graceful);
        }
    }

    /// <summary>Ends a running session that was asked to end or ended by itself: disconnect, dispose, count. Never faults.</summary>
    private async Task EndRunningAsync(ServerSession<TMessage> session)
    {
        // Started under the session's lock (from its runstate event) or on a sweep or shutdown: off them.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        var protocol = session.Protocol!;
        protocol.RunstateObserver = null;
        var (reason, error) = await EndAsync(session, protocol).ConfigureAwait(false);
        Interlocked.Decrement(ref _running);
        Finish(session, reason, error, ran: true);
    }

    /// <summary>The TLS handshake and the session's, under the handshake deadline; the running session, or null when it failed (and was counted).</summary>
    private async Task<PipeProtocol<TMessage>?> HandshakeAsync(ServerSession<TMessage> session, Socket socket, SslServerAuthenticationOptions? tls)
    {
        Interlocked.Increment(ref _handshaking);
        _metrics.HandshakeStarted();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopHandshakes.Token);
        if (Options.HandshakeTimeout != Timeout.InfiniteTimeSpan)
        {
            deadline.CancelAfter(Options.HandshakeTimeout);
        }

        TransportConnection? connection = null;
        try
        {
            session.Protocol = _factory(session.Info);
            session.Protocol.MessageActivity = _metrics;
            connection = tls is null
                ? SocketTransport.Open(socket, _transportOptions)
                : await SocketTransport.AuthenticateAsync(
                    socket,
                    _transportOptions,
                    (stream, token) => stream.AuthenticateAsServerAsync(tls, token),
                    deadline.Token).ConfigureAwait(false);
            if (connection is OwnedTransportConnection owned)
            {
                owned.Activity = session;
            }

            await session.Protocol.OpenAsync(connection, deadline.Token).ConfigureAwait(false);
            Interlocked.Decrement(ref _handshaking);
            _metrics.HandshakeEnded(succeeded: true, Stopwatch.GetElapsedTime(session.AcceptedAt));
            return session.Protocol;
        }
        catch (Exception ex)
        {
            if (connection is null)
            {
                // Not handed to a session (which closes what it was given): ours to close.
                socket.Dispose();
            }

            if (session.Protocol is { } protocol)
            {
                await protocol.DisposeAsync().ConfigureAwait(false);
            }

            var reason = _stopHandshakes.IsCancellationRequested ? SessionEndReason.Aborted
                : deadline.IsCancellationRequested ? SessionEndReason.HandshakeTimeout
                : SessionEndReason.HandshakeFailed;
            if (reason == SessionEndReason.HandshakeFailed && connection is null && session.Protocol is null)
            {
                ServerLog.CallbackFailed(_logger, PipeProtocolLog.Summarize(ex), ex);
            }

            Interlocked.Decrement(ref _handshaking);
            _metrics.HandshakeEnded(succeeded: false, TimeSpan.Zero);
            Finish(session, reason, ex, ran: false);
            return null;
        }
    }

    /// <summary>Completes the session's disconnect, within the shutdown timeout when the server asked for it, and disposes it.</summary>
    private async Task<(SessionEndReason Reason, Exception? Error)> EndAsync(ServerSession<TMessage> session, PipeProtocol<TMessage> protocol)
    {
        var requested = session.RequestedReason;
        Exception? error = null;
        SessionEndReason reason;
        using (var drain = CancellationTokenSource.CreateLinkedTokenSource(_abortSessions.Token))
        {
            if (Options.ShutdownTimeout != Timeout.InfiniteTimeSpan)
            {
                drain.CancelAfter(Options.ShutdownTimeout);
            }

            try
            {
                await protocol.DisconnectAsync(drain.Token).ConfigureAwait(false);
                reason = requested ?? SessionEndReason.Graceful;
            }
            catch (OperationCanceledException ex) when (drain.IsCancellationRequested)
            {
                error = ex;
                // Cut short, by the shutdown's deadline or this drain's own limit.
                reason = requested == SessionEndReason.IdleTimeout ? SessionEndReason.IdleTimeout : SessionEndReason.Aborted;
            }
            catch (Exception ex)
            {
                error = ex;
                reason = requested ?? Classify(ex);
            }
        }

        if (protocol.Runstate == Runstate.Idle)
        {
            await protocol.DisposeAsync().ConfigureAwait(false);
        }
        else
        {
            // A hook that ignores its token still holds the teardown: let it finish in the background
            // (DisposeAsync never throws) rather than hold up the shutdown.
            _ = protocol.DisposeAsync().AsTask();
        }

        return (reason, error);
    }

    /// <summary>The end reason for the error that ended a session by itself.</summary>
    private static SessionEndReason Classify(Exception error) => error switch
    {
        EndOfStreamException => SessionEndReason.PeerClosed,
        IOException or System.Net.Sockets.SocketException => SessionEndReason.Reset,
        StateException or ConnectException => SessionEndReason.Error,
        ProtocolException => SessionEndReason.FrameError,
        _ => SessionEndReason.Error,
    };

    private void Finish(ServerSession<TMessage> session, SessionEndReason reason, Exception? error, bool ran)
    {
        _sessions.TryRemove(session.Info.Id, out _);
        Interlocked.Decrement(ref _occupied);
        Finish(session.Info, reason, error, ran, Stopwatch.GetElapsedTime(session.AcceptedAt));
        if (Interlocked.Decrement(ref _unfinished) == 0 && _stopHandshakes.IsCancellationRequested)
        {
            _allFinished.TrySetResult();
        }
    }

    /// <summary>Counts an ended connection and tells <see cref="SessionEnded"/>.</summary>
    private void Finish(ServerConnectionInfo info, SessionEndReason reason, Exception? error, bool ran, TimeSpan duration)
    {
        Interlocked.Increment(ref _endCounts[(int)reason]);
        _metrics.Ended(reason, ran, duration, info.Transport);
        if (Volatile.Read(ref _shutdownCounts) is { } counts)
        {
            counts.Count(reason, ran);
        }

        ServerLog.SessionEnded(_logger, info.ToString(), reason, duration.TotalMilliseconds, error?.Message);
        if (SessionEnded is not { } handlers)
        {
            return;
        }

        var args = new SessionEndedEventArgs(info, reason, error, duration);
        foreach (var handler in handlers.GetInvocationList())
        {
            // Each handler in turn: one that throws costs the others nothing.
            try
            {
                ((EventHandler<SessionEndedEventArgs>)handler)(this, args);
            }
            catch (Exception ex)
            {
                ServerLog.CallbackFailed(_logger, PipeProtocolLog.Summarize(ex), ex);
            }
        }
    }

    /// <summary>Asks every running session that neither received nor sent for the idle timeout to disconnect; runs until shutdown.</summary>
    private async Task SweepIdleSessionsAsync()
    {
        var limit = Options.IdleTimeout;
        var period = TimeSpan.FromTicks(Math.Max(limit.Ticks / 4, TimeSpan.FromMilliseconds(10).Ticks));
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopHandshakes.Token).ConfigureAwait(false))
            {
                var now = Stopwatch.GetTimestamp();
                foreach (var session in _sessions.Values)
                {
                    if (!session.IsRunning)
                    {
                        continue;
                    }

                    var activity = session.Activity;
                    if (activity != session.SeenActivity)
                    {
                        session.SeenActivity = activity;
                        session.SeenActiveAt = now;
                    }
                    else if (Stopwatch.GetElapsedTime(session.SeenActiveAt, now) >= limit)
                    {
                        session.Request(SessionEndReason.IdleTimeout);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
    }
}
