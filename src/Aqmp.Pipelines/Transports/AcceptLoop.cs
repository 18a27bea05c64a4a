using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// What every accept loop shares: which accept errors are transient, the backoff between retries,
/// and its log message. The loop itself is <see cref="AcceptLoop{TConnection}"/>.
/// </summary>
public static partial class AcceptLoop
{
    /// <summary>The wait after the first transient accept error in a row.</summary>
    public static readonly TimeSpan InitialBackoff = TimeSpan.FromMilliseconds(10);

    /// <summary>The longest wait between retries.</summary>
    public static readonly TimeSpan MaximumBackoff = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Whether an accept error is about the moment (out of descriptors, memory or buffers, a client
    /// that aborted before being accepted, an interrupted call), not about the listener.
    /// </summary>
    /// <param name="error">The error accepting raised.</param>
    /// <returns><see langword="true"/> when accepting again after a pause may succeed.</returns>
    public static bool IsTransient(SocketException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return error.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.ConnectionAborted
                or SocketError.ConnectionReset or SocketError.NoBufferSpaceAvailable or SocketError.Interrupted
            || error.NativeErrorCode is 12 /* ENOMEM */ or 23 /* ENFILE */ or 24 /* EMFILE */ or 71 /* EPROTO */
                or 103 /* ECONNABORTED */ or 105 /* ENOBUFS */;
    }

    /// <summary>The wait after <paramref name="backoff"/>: doubled, at most <see cref="MaximumBackoff"/>.</summary>
    internal static TimeSpan Next(TimeSpan backoff) => TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaximumBackoff.Ticks));

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Accepting a client failed ({Error}); retrying in {DelayMilliseconds} ms.")]
    internal static partial void AcceptFailedTransiently(ILogger logger, string error, double delayMilliseconds, Exception exception);
}
