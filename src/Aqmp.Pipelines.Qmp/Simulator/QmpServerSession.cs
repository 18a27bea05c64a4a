using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The server side of one simulated QMP connection: greets, negotiates, then answers each command
/// in order through the simulator's handlers (as QEMU's monitor does without out-of-band; an
/// <c>exec-oob</c> command the schema allows runs in its turn too, it does not overtake). Input
/// is read as QEMU reads it (<see cref="QemuInputFramer"/>): whatever is not a command (malformed
/// JSON, a stray byte, a value that is not a command) is answered with QEMU's error reply for it
/// and the session goes on.
/// </summary>
internal sealed class QmpServerSession : PipeProtocol<QmpMessage>
{
    private const string CapabilitiesCommand = "qmp_capabilities";
    private const string QuitCommand = "quit";

    private readonly QmpSimulator _simulator;
    private readonly QmpSimulatorOptions _options;
    private readonly QemuInputFramer _framer;
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _negotiated;

    public QmpServerSession(QmpSimulator simulator, QmpSimulatorOptions options, ILoggerFactory? loggerFactory)
        : this(simulator, options, new QemuInputFramer(options.MaximumMessageLength), loggerFactory)
    {
    }

    private QmpServerSession(QmpSimulator simulator, QmpSimulatorOptions options, QemuInputFramer framer, ILoggerFactory? loggerFactory)
        : base(framer, options.Session, loggerFactory, "simulator")
    {
        _simulator = simulator;
        _options = options;
        _framer = framer;
    }

    /// <summary>Completes when the session has ended (after it reached Running).</summary>
    public Task Ended => _ended.Task;

    /// <summary>Sends an event to this client.</summary>
    public ValueTask EmitAsync(QmpMessage message, CancellationToken cancellationToken) => SendAsync(message, cancellationToken);

    protected override Task EstablishSessionAsync(HandshakeContext<QmpMessage> handshake, CancellationToken cancellationToken)
        => handshake.SendAsync(QmpMessage.Greeting(_options.Version, _options.Capabilities), cancellationToken).AsTask();

    protected override async ValueTask OnMessageAsync(QmpMessage message, MessageContext<QmpMessage> context, CancellationToken cancellationToken)
    {
        if (message.IsRefusal)
        {
            await context.SendAsync(message, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (message.Kind != QmpMessageKind.Command)
        {
            await context.SendAsync(QmpMessage.Error("GenericError", "QMP input lacks member 'execute'", message.Id), cancellationToken).ConfigureAwait(false);
            return;
        }

        var name = message.CommandName!;
        if (!_negotiated)
        {
            await context.SendAsync(Negotiate(message), cancellationToken).ConfigureAwait(false);
            return;
        }

        if (message.IsOutOfBand && !QmpSimulator.AllowsOutOfBand(name))
        {
            var known = _simulator.Knows(name);
            await context.SendAsync(QmpMessage.Error(known ? "GenericError" : "CommandNotFound", known ? $"The command {name} does not support OOB" : $"The command {name} has not been found", message.Id), cancellationToken).ConfigureAwait(false);
            return;
        }

        if (name == CapabilitiesCommand)
        {
            // QEMU checks the arguments before it finds negotiation already done.
            var refusal = QmpSimulator.ArgumentRefusal(message);
            await context.SendAsync(refusal is null
                ? QmpMessage.Error("CommandNotFound", "Capabilities negotiation is already complete, command ignored", message.Id)
                : QmpMessage.Error("GenericError", refusal, message.Id), cancellationToken).ConfigureAwait(false);
            return;
        }

        var reply = await _simulator.RunCommandAsync(message, context.SendAsync, cancellationToken).ConfigureAwait(false);
        await context.SendAsync(reply, cancellationToken).ConfigureAwait(false);
        if (name == QuitCommand && reply.Kind == QmpMessageKind.Return)
        {
            // QEMU closes the connection after answering quit, and reads no further command; the
            // reply is drained first.
            context.EndSession();
        }
    }

    protected override ValueTask OnSessionEndedAsync(Exception? rootCause)
    {
        _ended.TrySetResult();
        return ValueTask.CompletedTask;
    }

    private QmpMessage Negotiate(QmpMessage command)
    {
        if (command.CommandName != CapabilitiesCommand)
        {
            return QmpMessage.Error("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'", command.Id);
        }

        if (QmpSimulator.ArgumentRefusal(command) is { } refusal)
        {
            return QmpMessage.Error("GenericError", refusal, command.Id);
        }

        if (command.Arguments is { } arguments && arguments.TryGetProperty("enable", out var enable)
            && enable.EnumerateArray().Select(c => c.GetString()!).FirstOrDefault(c => !_options.Capabilities.Contains(c)) is { } unavailable)
        {
            return QmpMessage.Error("GenericError", $"Capability {unavailable} not available", command.Id);
        }

        _negotiated = true;
        _framer.AllowOutOfBand = command.Arguments is { } chosen && chosen.TryGetProperty("enable", out var list)
            && list.EnumerateArray().Any(c => c.GetString() == QmpCapabilities.OutOfBand);
        return QmpMessage.Return(null, command.Id);
    }
}
