using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>An asynchronous event from the server.</summary>
/// <param name="Name">The event name, e.g. <c>STOP</c> or <c>SHUTDOWN</c>.</param>
/// <param name="Data">The event's <c>data</c> member, when it has one.</param>
/// <param name="Timestamp">When the server emitted it (its <c>timestamp</c> member; <see cref="DateTimeOffset.MinValue"/> when absent).</param>
/// <param name="Message">The whole message.</param>
public sealed record QmpEvent(string Name, JsonElement? Data, DateTimeOffset Timestamp, QmpMessage Message)
{
    /// <summary>The event as one line of JSON, as the server sent it.</summary>
    /// <returns>The JSON text.</returns>
    public override string ToString() => Message.ToString();
}
