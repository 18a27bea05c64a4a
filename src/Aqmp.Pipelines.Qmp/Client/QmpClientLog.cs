using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>The log messages of <see cref="QmpClient"/>, source-generated.</summary>
internal static partial class QmpClientLog
{
    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Reply with unknown id {Id} dropped (its execute was cancelled or timed out).")]
    public static partial void UnknownReplyDropped(ILogger logger, string id);
}
