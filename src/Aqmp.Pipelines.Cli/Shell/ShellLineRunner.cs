using System.Globalization;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>
/// Runs the lines of one shell session against its client, in the shell's mode: QMP lines (with
/// transactions) or, with <c>-H</c>, HMP lines. Prints replies (one line of JSON, or indented with
/// <c>-p</c>; HMP's text as it is), QMP errors as <c>error: CLASS: DESC</c>, and with <c>-v</c> each
/// command before it is sent.
/// </summary>
internal sealed class ShellLineRunner(QmpClient client, ShellOptions options, TextWriter console, TextWriter error)
{
    private int? _cpuIndex;
    private int? _cpuToCheck;

    /// <summary>The transaction being typed, if any (its prompt is <see cref="ShellTransaction.Prompt"/>).</summary>
    public ShellTransaction Transaction { get; } = new();

    /// <summary>
    /// Whether a line that ends QEMU was sent (<c>quit</c>, or HMP's <c>quit</c>/<c>q</c>): the
    /// server closing the connection afterwards is the expected end.
    /// </summary>
    public bool QuitSent { get; private set; }

    /// <summary>Runs one line (already trimmed, not empty, not a shell command).</summary>
    /// <param name="line">The line.</param>
    /// <param name="cancellationToken">Stops waiting for the reply; the late reply is dropped.</param>
    /// <returns>What the line came to.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async Task<ShellLineOutcome> RunAsync(string line, CancellationToken cancellationToken)
    {
        QmpMessage? command;
        try
        {
            command = options.Hmp ? HmpCommand(line) : QmpCommand(line);
        }
        catch (FormatException ex)
        {
            await error.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ShellLineOutcome.Failed;
        }

        if (command is null)
        {
            return ShellLineOutcome.Done;
        }

        if (_cpuToCheck is { } cpu)
        {
            _cpuToCheck = null;
            return await SelectCpuAsync(command, cpu, cancellationToken).ConfigureAwait(false);
        }

        if (options.Verbose)
        {
            await console.WriteLineAsync(JsonText.Format(QmpJson.Write(command.WriteTo), options.Pretty)).ConfigureAwait(false);
        }

        var isQuit = options.Hmp ? line.Split(' ', 2)[0] is "quit" or "q" : command.CommandName == "quit";
        QuitSent |= isQuit;
        QmpMessage reply;
        try
        {
            reply = await client.ExecuteMessageAsync(command, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is QmpExecuteInterruptedException or StateException)
        {
            return isQuit ? ShellLineOutcome.Quit : ShellLineOutcome.SessionLost;
        }

        if (reply.Kind == QmpMessageKind.Error)
        {
            await error.WriteLineAsync($"error: {reply.ErrorClass}: {reply.ErrorDescription}").ConfigureAwait(false);
            return ShellLineOutcome.Failed;
        }

        var value = reply.ReturnValue!.Value;
        if (options.Hmp && value.ValueKind == JsonValueKind.String)
        {
            // HMP's text, as a person reads it: its own line ends, no JSON escapes.
            var text = value.GetString()!.ReplaceLineEndings("\n").TrimEnd('\n');
            if (text.Length > 0)
            {
                await console.WriteLineAsync(text).ConfigureAwait(false);
            }
        }
        else
        {
            await console.WriteLineAsync(JsonText.Format(value, options.Pretty)).ConfigureAwait(false);
        }

        return isQuit ? ShellLineOutcome.Quit : ShellLineOutcome.Done;
    }

    private QmpMessage? QmpCommand(string line)
    {
        if (line.StartsWith('{'))
        {
            return Transaction.IsOpen ? throw new FormatException("raw JSON cannot be a transaction action") : ShellLineParser.Parse(line);
        }

        var tokens = ShellLineParser.Tokenize(line);
        return Transaction.Takes(tokens) ? Transaction.Read(tokens) : ShellLineParser.Parse(line);
    }

    /// <summary>
    /// The <c>human-monitor-command</c> for an HMP line; <c>cpu N</c> is kept by the shell (as
    /// qmp-shell does) and sent as <c>cpu-index</c> with every later line.
    /// </summary>
    private QmpMessage? HmpCommand(string line)
    {
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words[0] == "cpu")
        {
            if (words.Length != 2 || !int.TryParse(words[1], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            {
                throw new FormatException("cpu takes one whole number: the index of the CPU later commands are for");
            }

            _cpuToCheck = index;
            return HumanMonitorCommand("info version", index);
        }

        return HumanMonitorCommand(line, _cpuIndex);
    }

    /// <summary>Makes <paramref name="cpu"/> the CPU of later HMP lines if the server accepts it for <paramref name="probe"/> (as qmp-shell checks with <c>info version</c>).</summary>
    private async Task<ShellLineOutcome> SelectCpuAsync(QmpMessage probe, int cpu, CancellationToken cancellationToken)
    {
        QmpMessage reply;
        try
        {
            reply = await client.ExecuteMessageAsync(probe, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is QmpExecuteInterruptedException or StateException)
        {
            return ShellLineOutcome.SessionLost;
        }

        if (reply.Kind == QmpMessageKind.Error)
        {
            await error.WriteLineAsync($"error: bad CPU index {cpu}: {reply.ErrorDescription}").ConfigureAwait(false);
            return ShellLineOutcome.Failed;
        }

        _cpuIndex = cpu;
        return ShellLineOutcome.Done;
    }

    private static QmpMessage HumanMonitorCommand(string line, int? cpuIndex) =>
        QmpMessage.Command("human-monitor-command", QmpJson.Write(writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("command-line", line);
            if (cpuIndex is { } cpu)
            {
                writer.WriteNumber("cpu-index", cpu);
            }

            writer.WriteEndObject();
        }));
}
