namespace Aqmp.Pipelines.Qmp.Messages;

/// <summary>What a QMP message is, by the member that identifies it.</summary>
public enum QmpMessageKind
{
    /// <summary>The server's greeting: <c>{"QMP": {"version": …, "capabilities": […]}}</c>.</summary>
    Greeting,

    /// <summary>A command: <c>{"execute": NAME, "arguments": {…}, "id": …}</c> (or <c>"exec-oob"</c>).</summary>
    Command,

    /// <summary>A successful reply: <c>{"return": VALUE, "id": …}</c>.</summary>
    Return,

    /// <summary>An error reply: <c>{"error": {"class": …, "desc": …}, "id": …}</c>.</summary>
    Error,

    /// <summary>An asynchronous event: <c>{"event": NAME, "data": {…}, "timestamp": {…}}</c>.</summary>
    Event,
}
