using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The server side of one simulated QMP connection: greets, negotiates, then answers each command
/// through the simulator's handlers, scheduled as QEMU's monitor schedules them. Without
/// out-of-band, one at a time on the read loop: nothing more is read until a command is answered.
/// Once <c>oob</c> is negotiated, in-band input (commands and the errors for malformed input) is
/// queued, at most <see cref="InBandQueueLength"/> deep (the read loop waits while the queue is
/// full, as QEMU stops reading), and answered in order by a worker off the read loop, while an
/// <c>exec-oob</c> command runs on the read loop at once and so overtakes in-band commands still
/// queued or running. Input is read as QEMU reads it (<see cref="QemuInputFramer"/>): whatever
/// is not a command (malformed JSON, a stray byte, a value that is not a command) is answered
/// with QEMU's error reply for it and the session goes on.
/// </summary>
internal sealed class QmpServerSession : PipeProtocol<QmpMessage>
{
    private const string CapabilitiesCommand = "qmp_capabilities";
    private const string QuitCommand = "quit";

    private readonly QmpSimulator _simulator;
    private readonly QmpSimulatorOptions _options;
    private readonly QemuInputFramer _framer;
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _negotiatedOnce = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _over = new();
    private Channel<QmpMessage>? _inBand;
    private Task _inBandWorker = Task.CompletedTask;
    private Exception? _inBandFault;
    private bool _negotiated;
    private readonly HeldDescriptors _received = new();

    /// <summary>How many in-band requests wait at most, once oob is negotiated (QEMU's <c>QMP_REQ_QUEUE_LEN_MAX</c>).</summary>
    public const int InBandQueueLength = 8;

    /// <summary>How long the end of a session waits for an in-band handler that ignores its cancellation.</summary>
    private static readonly TimeSpan InBandStopGrace = TimeSpan.FromSeconds(2);

    public QmpServerSession(QmpSimulator simulator, QmpSimulatorOptions options, ILoggerFactory? loggerFactory, bool passesDescriptors = false)
        : this(simulator, options, new QemuInputFramer(options.MaximumMessageLength), loggerFactory, passesDescriptors)
    {
    }

    private QmpServerSession(QmpSimulator simulator, QmpSimulatorOptions options, QemuInputFramer framer, ILoggerFactory? loggerFactory, bool passesDescriptors)
        : base(framer, options.Session with { AllowDescriptorPassing = passesDescriptors }, loggerFactory, "simulator")
    {
        _simulator = simulator;
        _options = options;
        _framer = framer;
    }

    /// <summary>Completes when the session has ended (after it reached Running).</summary>
    public Task Ended => _ended.Task;

    /// <summary>Completes when the client has negotiated capabilities.</summary>
    public Task Negotiated => _negotiatedOnce.Task;

    /// <summary>Whether the client's <c>quit</c> was answered with success (the session ends then).</summary>
    public bool AnsweredQuit { get; private set; }

    /// <summary>Whether the client has negotiated capabilities (from then on it receives events).</summary>
    public bool HasNegotiated => _negotiatedOnce.Task.IsCompleted;

    /// <summary>Sends an event to this client.</summary>
    public ValueTask EmitAsync(QmpMessage message, CancellationToken cancellationToken) => SendAsync(message, cancellationToken);

    protected override Task EstablishSessionAsync(HandshakeContext<QmpMessage> handshake, CancellationToken cancellationToken)
        => handshake.SendAsync(QmpMessage.Greeting(_options.Version, _options.Capabilities), cancellationToken).AsTask();

    protected override async ValueTask OnMessageAsync(QmpMessage message, MessageContext<QmpMessage> context, CancellationToken cancellationToken)
    {
        if (AllowsDescriptorPassing)
        {
            // As QEMU's socket chardev: the descriptors of the last read that brought any replace those held.
            _received.Replace(context.TakeDescriptors());
        }

        if (_inBand is { } queue && !message.IsOutOfBand)
        {
            // As QEMU stops reading once its queue is full, the read loop does not return until
            // the queue has room again. A closed queue means the worker ended the session (quit).
            if (queue.Writer.TryWrite(message))
            {
                await queue.Writer.WaitToWriteAsync(cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        await AnswerAsync(message, context, cancellationToken).ConfigureAwait(false);
        if (_negotiated && _framer.AllowOutOfBand && _inBand is null)
        {
            _inBand = Channel.CreateBounded<QmpMessage>(new BoundedChannelOptions(InBandQueueLength) { SingleReader = true, SingleWriter = true });
            _inBandWorker = AnswerInBandAsync(_inBand.Reader, context, _over.Token);
        }
    }

    protected override async ValueTask OnSessionEndedAsync(Exception? rootCause)
    {
        // Queued in-band commands are dropped with the connection, as QEMU drops them; the one
        // running is cancelled, and waited for a bounded time (a handler may ignore its token).
        _inBand?.Writer.TryComplete();
        await _over.CancelAsync().ConfigureAwait(false);
        if (!_inBandWorker.IsCompleted)
        {
            await Task.WhenAny(_inBandWorker, Task.Delay(InBandStopGrace, CancellationToken.None)).ConfigureAwait(false);
        }

        _received.Replace(null);
        _ended.TrySetResult();
        if (_inBandFault is { } fault)
        {
            ExceptionDispatchInfo.Throw(fault);
        }
    }

    /// <summary>Answers queued in-band input in order until the session is over.</summary>
    private async Task AnswerInBandAsync(ChannelReader<QmpMessage> queue, MessageContext<QmpMessage> context, CancellationToken over)
    {
        await Task.Yield();
        try
        {
            await foreach (var message in queue.ReadAllAsync(over).ConfigureAwait(false))
            {
                await AnswerAsync(message, context, over).ConfigureAwait(false);
                if (context.IsEndRequested)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or Session.StateException)
        {
            // The session is over: what is left is dropped with the connection.
        }
        catch (Exception ex)
        {
            // A reply could not be sent (the framer refused it): the session ends with that error.
            _inBandFault = ex;
            context.EndSession();
        }
        finally
        {
            _inBand!.Writer.TryComplete();
        }
    }

    /// <summary>Answers one request: the error for input that is not a command, negotiation, or the command's reply.</summary>
    private async ValueTask AnswerAsync(QmpMessage message, MessageContext<QmpMessage> context, CancellationToken cancellationToken)
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

        var reply = await _simulator.RunCommandAsync(this, message, context.SendAsync, cancellationToken, _received.TakeFirst).ConfigureAwait(false);
        await context.SendAsync(reply, cancellationToken).ConfigureAwait(false);
        if (name == QuitCommand && reply.Kind == QmpMessageKind.Return)
        {
            // QEMU closes the connection after answering quit, and reads no further command; the
            // reply is drained first.
            AnsweredQuit = true;
            context.EndSession();
        }
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
        _negotiatedOnce.TrySetResult();
        _framer.AllowOutOfBand = command.Arguments is { } chosen && chosen.TryGetProperty("enable", out var list)
            && list.EnumerateArray().Any(c => c.GetString() == QmpCapabilities.OutOfBand);
        return QmpMessage.Return(null, command.Id);
    }
}
