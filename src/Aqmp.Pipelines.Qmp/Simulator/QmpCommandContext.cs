using Microsoft.Win32.SafeHandles;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>What a simulator command handler gets: the command and a way to emit events.</summary>
public sealed class QmpCommandContext
{
    private readonly Func<QmpMessage, CancellationToken, ValueTask> _emit;

    private readonly Func<SafeFileHandle?>? _takeDescriptor;

    internal QmpCommandContext(QmpSimulator simulator, QmpMessage command, Func<QmpMessage, CancellationToken, ValueTask> emit, Func<SafeFileHandle?>? takeDescriptor = null)
    {
        Simulator = simulator;
        Command = command;
        _emit = emit;
        _takeDescriptor = takeDescriptor;
    }

    /// <summary>
    /// Takes the file descriptor the client passed, as QEMU's monitor does for <c>getfd</c> and
    /// <c>add-fd</c>: the first of those that came with the last message that carried any (the
    /// others of that message are closed); the caller owns it. A second call returns null until the
    /// client passes descriptors again. Null too over a connection that cannot pass descriptors.
    /// </summary>
    /// <returns>The descriptor, or null when none is held.</returns>
    public SafeFileHandle? TakeDescriptor() => _takeDescriptor?.Invoke();

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
