using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Server;

/// <summary>The log messages of <see cref="PipeProtocolServer{TMessage}"/>, source-generated (no cost when disabled).</summary>
internal static partial class ServerLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Listening on {EndPoint}{Tls}.")]
    public static partial void Listening(ILogger logger, string endPoint, string tls);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "Stopped accepting on {EndPoint}: {Summary}")]
    public static partial void AcceptLoopFailed(ILogger logger, string endPoint, string summary, Exception exception);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Refused a connection from {RemoteEndPoint}: {Count} sessions is the maximum.")]
    public static partial void Refused(ILogger logger, string? remoteEndPoint, int count);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "Session {Connection} ended: {Reason} after {Milliseconds} ms ({Error}).")]
    public static partial void SessionEnded(ILogger logger, string connection, SessionEndReason reason, double milliseconds, string? error);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "The server's session factory or a SessionEnded handler failed: {Summary}")]
    public static partial void CallbackFailed(ILogger logger, string summary, Exception exception);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Shut down: {Result}.")]
    public static partial void ShutDown(ILogger logger, string result);
}
