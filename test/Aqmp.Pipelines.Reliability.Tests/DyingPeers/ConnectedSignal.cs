using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Reliability.Tests.DyingPeers;

/// <summary>
/// A logger factory that only watches for the session's "Connected" log event (event id 5, logged
/// once the transport is up and before the handshake starts), so that a scripted peer can wait for
/// the client's side of the connection to be established before it dies. Without it, a reset that
/// overtakes the connect's own completion fails the connection phase instead of the handshake.
/// </summary>
internal sealed class ConnectedSignal : ILoggerFactory, ILogger
{
    private const int ConnectedEventId = 5;

    private TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once the transport of the current attempt is up.</summary>
    public Task Connected => Volatile.Read(ref _connected).Task;

    /// <summary>Arms the signal for the next connection attempt.</summary>
    public void Reset() => Volatile.Write(ref _connected, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (eventId.Id == ConnectedEventId)
        {
            Volatile.Read(ref _connected).TrySetResult();
        }
    }

    public void Dispose()
    {
    }
}
