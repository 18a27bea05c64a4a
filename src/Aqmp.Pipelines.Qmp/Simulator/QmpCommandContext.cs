using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>What a simulator command handler gets: the command and a way to emit events.</summary>
public sealed class QmpCommandContext
{
    private readonly Func<QmpMessage, CancellationToken, ValueTask> _emit;

    internal QmpCommandContext(QmpSimulator simulator, QmpMessage command, Func<QmpMessage, CancellationToken, ValueTask> emit)
    {
        Simulator = simulator;
        Command = command;
        _emit = emit;
    }

    /// <summary>The simulator running the command.</summary>
    public QmpSimulator Simulator { get; }

    /// <summary>The command message.</summary>
    public QmpMessage Command { get; }

    /// <summary>The command's arguments, when it has any.</summary>
    public JsonElement? Arguments => Command.Arguments;

    /// <summary>Sends an event to the client, before the command's reply (as QEMU does for <c>stop</c>).</summary>
    /// <param name="name">The event name.</param>
    /// <param name="data">Its data, or null.</param>
    /// <param name="cancellationToken">Stops waiting for queue space.</param>
    /// <returns>A task that completes when the event is queued.</returns>
    public ValueTask EmitEventAsync(string name, JsonElement? data = null, CancellationToken cancellationToken = default)
        => _emit(QmpMessage.Event(name, data, DateTimeOffset.UtcNow), cancellationToken);
}
