using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Session;

/// <summary>The log messages of <see cref="PipeProtocol{TMessage}"/>, source-generated (no cost when disabled).</summary>
internal static partial class PipeProtocolLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Transitioning from '{Previous}' to '{Current}'.")]
    public static partial void Transition(ILogger logger, Runstate previous, Runstate current);

    [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "<-- {Message}")]
    public static partial void Inbound(ILogger logger, string message);

    [LoggerMessage(EventId = 3, Level = LogLevel.Debug, Message = "--> {Message}")]
    public static partial void Outbound(ILogger logger, string message);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "{Operation} to {EndPoint} ...")]
    public static partial void Connecting(ILogger logger, string operation, string endPoint);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "Connected: {Connection}.")]
    public static partial void Connected(ILogger logger, string connection);

    [LoggerMessage(EventId = 6, Level = LogLevel.Error, Message = "{Phase}: {Summary}")]
    public static partial void ConnectFailed(ILogger logger, string phase, string summary, Exception exception);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Task.{Loop}: {Summary}")]
    public static partial void LoopEndOfStream(ILogger logger, string loop, string summary);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "Task.{Loop}: {Summary}")]
    public static partial void LoopFailed(ILogger logger, string loop, string summary, Exception exception);

    [LoggerMessage(EventId = 9, Level = LogLevel.Debug, Message = "Task.{Loop}: exiting.")]
    public static partial void LoopExited(ILogger logger, string loop);

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "DisconnectAsync() called.")]
    public static partial void DisconnectCalled(ILogger logger);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "Flushing the outbound messages ...")]
    public static partial void Draining(ILogger logger);

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "{Count} outbound messages were not flushed: the session ended with an error or the drain was cancelled.")]
    public static partial void DroppedOutbound(ILogger logger, int count);

    [LoggerMessage(EventId = 13, Level = LogLevel.Error, Message = "Failed to close the transport: {Summary}")]
    public static partial void CloseFailed(ILogger logger, string summary, Exception exception);

    [LoggerMessage(EventId = 14, Level = LogLevel.Debug, Message = "Disconnected.")]
    public static partial void Disconnected(ILogger logger);

    [LoggerMessage(EventId = 15, Level = LogLevel.Debug, Message = "Listening on {EndPoint}.")]
    public static partial void Listening(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 16, Level = LogLevel.Error, Message = "A RunstateChanged handler threw; the transition stands.")]
    public static partial void RunstateHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 17, Level = LogLevel.Error, Message = "OnSessionEndedAsync threw: {Summary}")]
    public static partial void SessionEndedHookFailed(ILogger logger, string summary, Exception exception);

    [LoggerMessage(EventId = 18, Level = LogLevel.Debug, Message = "Disposed; the session had ended with: {Summary}")]
    public static partial void DisposedWithError(ILogger logger, string summary);

    [LoggerMessage(EventId = 19, Level = LogLevel.Information, Message = "The peer closed the connection, as the protocol expected.")]
    public static partial void PeerClosedAsExpected(ILogger logger);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "A write failed and the input was not at its end within {Timeout}: what was still to come is not delivered.")]
    public static partial void InputDrainTimedOut(ILogger logger, TimeSpan timeout);

    /// <summary>QEMU aqmp's <c>exception_summary</c>: "TypeName: message", or the type name alone.</summary>
    public static string Summarize(Exception exception)
        => string.IsNullOrEmpty(exception.Message) ? exception.GetType().Name : $"{exception.GetType().Name}: {exception.Message}";
}
