using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>
/// The shell's QMP client: a <see cref="QmpClient"/> that can skip the greeting and negotiation
/// (qmp-shell's <c>-N</c>, for qemu-ga, which sends neither) and writes every message sent and
/// received, greeting and <c>qmp_capabilities</c> included, to a log as one JSON line each
/// (qmp-shell's <c>-l</c>).
/// </summary>
internal sealed class ShellQmpClient(QmpClientOptions options, bool skipNegotiation, TextWriter? log) : QmpClient(options)
{
    private readonly Lock _logGate = new();

    /// <summary>Negotiates as <see cref="QmpClient"/> does, or, with <c>-N</c>, not at all: the session starts at once.</summary>
    /// <param name="handshake">The negotiation's access to the connection.</param>
    /// <param name="cancellationToken">Cancels the negotiation.</param>
    /// <returns>A task that completes when the session is negotiated.</returns>
    protected override Task EstablishSessionAsync(HandshakeContext<QmpMessage> handshake, CancellationToken cancellationToken) =>
        skipNegotiation ? Task.CompletedTask : base.EstablishSessionAsync(handshake, cancellationToken);

    /// <summary>Logs the received message, then delivers it unchanged.</summary>
    /// <param name="message">The message received.</param>
    /// <returns>The message.</returns>
    protected override QmpMessage OnInbound(QmpMessage message)
    {
        Log(message);
        return base.OnInbound(message);
    }

    /// <summary>Logs the message once the client lets it go (a command after <c>quit</c> is refused, and not logged).</summary>
    /// <param name="message">The message to send.</param>
    /// <returns>The message.</returns>
    protected override QmpMessage OnOutbound(QmpMessage message)
    {
        var sent = base.OnOutbound(message);
        Log(sent);
        return sent;
    }

    private void Log(QmpMessage message)
    {
        if (log is null)
        {
            return;
        }

        var line = JsonText.Compact(message.WriteTo);
        lock (_logGate)
        {
            log.WriteLine(line);
            log.Flush();
        }
    }
}
