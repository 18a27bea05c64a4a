using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>The log messages of <see cref="QmpSimulator"/>, source-generated (no cost when disabled).</summary>
internal static partial class QmpSimulatorLog
{
    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "The simulator stopped accepting clients: {Summary}")]
    public static partial void AcceptLoopFailed(ILogger logger, string summary, Exception exception);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "A client did not negotiate capabilities within {Seconds} s; disconnecting it to serve the next one.")]
    public static partial void ClientDidNotNegotiate(ILogger logger, double seconds);
}
