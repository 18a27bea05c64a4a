using System.Collections.Concurrent;
using System.Net.Sockets;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// A line echo server for the lifecycle tests: a raw Unix-domain listener whose every accepted
/// socket is served by a fresh <see cref="PipeProtocol{TMessage}"/> (opened on the socket) that
/// echoes each line, ends when the client goes away, and is disposed. So both ends of every
/// connection are the library's, and both must release everything.
/// </summary>
internal sealed class LifecycleEchoServer : IAsyncDisposable
{
    private static readonly TimeSpan SessionBound = TimeSpan.FromSeconds(30);

    private readonly Socket _listener;
    private readonly Task _acceptLoop;
    private readonly ConcurrentDictionary<int, EchoSession> _sessions = new();
    private readonly ConcurrentQueue<Exception> _errors = new();
    private readonly CancellationTokenSource _stop = new();
    private int _nextId;
    private int _served;

    private LifecycleEchoServer(Socket listener, UnixDomainSocketEndPoint endPoint)
    {
        _listener = listener;
        EndPoint = endPoint;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public UnixDomainSocketEndPoint EndPoint { get; }

    /// <summary>How many connections were accepted so far.</summary>
    public int Served => Volatile.Read(ref _served);

    /// <summary>How many server sessions are still alive (not yet ended and disposed).</summary>
    public int Active => _sessions.Count;

    /// <summary>Unexpected failures of the server side (a session that could not open or never ended).</summary>
    public IReadOnlyCollection<Exception> Errors => _errors;

    public static LifecycleEchoServer Start(SocketFiles socketFiles)
    {
        var endPoint = socketFiles.NewEndPoint();
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(endPoint);
        socket.Listen(64);
        return new LifecycleEchoServer(socket, endPoint);
    }

    /// <summary>Waits (bounded) until every server session has ended and been disposed.</summary>
    public async Task UntilIdleAsync()
    {
        using var timeout = new CancellationTokenSource(TestTimeouts.Default);
        while (!_sessions.IsEmpty)
        {
            await Task.Delay(5, timeout.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _acceptLoop.Bounded();
        foreach (var session in _sessions.Values)
        {
            await session.DisposeAsync().Bounded();
        }

        await UntilIdleAsync();
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            Interlocked.Increment(ref _served);
            var id = Interlocked.Increment(ref _nextId);
            var session = new EchoSession();
            _sessions[id] = session;
            _ = Task.Run(() => ServeAsync(id, session, socket));
        }
    }

    private async Task ServeAsync(int id, EchoSession session, Socket socket)
    {
        try
        {
            await session.OpenAsync(socket);
            await session.Ended.WaitAsync(SessionBound, _stop.Token);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // The server is being disposed.
        }
        catch (Exception ex)
        {
            _errors.Enqueue(ex);
        }
        finally
        {
            await session.DisposeAsync();
            _sessions.TryRemove(id, out _);
        }
    }

    /// <summary>The server end of one connection: echoes every line back.</summary>
    private sealed class EchoSession() : PipeProtocol<string>(new Utf8LineFramer(), name: "echo-server")
    {
        private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Ended => _ended.Task;

        protected override ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken)
            => context.SendAsync(message, cancellationToken);

        protected override ValueTask OnSessionEndedAsync(Exception? rootCause)
        {
            _ended.TrySetResult();
            return ValueTask.CompletedTask;
        }
    }
}
