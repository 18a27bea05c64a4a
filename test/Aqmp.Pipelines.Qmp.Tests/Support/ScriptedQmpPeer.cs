using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Qmp.Tests.Support;

/// <summary>
/// The server end of a QMP session over two crossed in-memory <see cref="Pipe"/>s, driven line by
/// line by the test: it writes exactly the bytes it is told to (so ordering, interleaving and
/// malformed input are under the test's control) and reads the client's commands as parsed JSON.
/// </summary>
/// <remarks>
/// <see cref="ClientPipe"/> is the client's end, for <c>client.OpenAsync(IDuplexPipe)</c>. Every
/// helper is bounded by <see cref="TestTimeouts.Default"/>. Disposing the peer disposes the client it
/// was made for, unless told otherwise (bounded too), then completes the peer's ends.
/// </remarks>
internal sealed class ScriptedQmpPeer : IAsyncDisposable
{
    /// <summary>The version <see cref="SendGreetingAsync"/> announces.</summary>
    public static readonly QmpVersion DefaultVersion = new(9, 2, 1, "v9.2.1");

    private readonly Pipe _toClient;
    private readonly Pipe _toPeer;

    // Reads what the client writes as QEMU does: JSON values, with or without separators.
    private readonly Aqmp.Pipelines.Framing.JsonStreamFramer _values = new(maximumValueLength: 16 * 1024 * 1024);
    private readonly bool _ownsClient;

    /// <summary>Creates the peer and its pipes.</summary>
    /// <param name="client">The client this peer serves (disposed with the peer), or null.</param>
    /// <param name="toClientOptions">Options of the pipe the peer writes and the client reads; defaults when null.</param>
    /// <param name="ownsClient">Whether disposing the peer disposes <paramref name="client"/> (false to reuse it for another session).</param>
    public ScriptedQmpPeer(QmpClient? client = null, PipeOptions? toClientOptions = null, bool ownsClient = true)
    {
        Client = client;
        _ownsClient = ownsClient;
        _toClient = new Pipe(toClientOptions ?? new PipeOptions(useSynchronizationContext: false));
        _toPeer = new Pipe(new PipeOptions(useSynchronizationContext: false));
        ClientPipe = new PipeEnds(_toClient.Reader, _toPeer.Writer);
    }

    /// <summary>The client's end: it reads what the peer writes and writes what the peer reads.</summary>
    public IDuplexPipe ClientPipe { get; }

    /// <summary>The client this peer was made for, if any.</summary>
    public QmpClient? Client { get; }

    private QmpClient RequiredClient => Client ?? throw new InvalidOperationException("This peer was made without a client.");

    // ---- JSON builders -------------------------------------------------------------------

    /// <summary>A greeting line announcing <paramref name="version"/> (or <see cref="DefaultVersion"/>) and <paramref name="capabilities"/>.</summary>
    public static string GreetingJson(IEnumerable<string> capabilities, QmpVersion? version = null)
    {
        var v = version ?? DefaultVersion;
        var caps = string.Join(",", capabilities.Select(c => $"\"{c}\""));
        return $$$"""{"QMP":{"version":{"qemu":{"micro":{{{v.Micro}}},"minor":{{{v.Minor}}},"major":{{{v.Major}}}},"package":"{{{v.Package}}}"},"capabilities":[{{{caps}}}]}}""";
    }

    /// <summary>An event line, with a fixed timestamp and <paramref name="dataJson"/> as its data when given.</summary>
    public static string EventJson(string name, string? dataJson = null)
        => dataJson is null
            ? $$$"""{"event":"{{{name}}}","timestamp":{"seconds":1700000000,"microseconds":123456}}"""
            : $$$"""{"event":"{{{name}}}","data":{{{dataJson}}},"timestamp":{"seconds":1700000000,"microseconds":123456}}""";

    /// <summary>A success reply line for the command whose id is <paramref name="idJson"/> (raw JSON).</summary>
    public static string ReturnJson(string idJson, string valueJson = "{}") => $$"""{"return":{{valueJson}},"id":{{idJson}}}""";

    /// <summary>An error reply line for the command whose id is <paramref name="idJson"/> (raw JSON).</summary>
    public static string ErrorJson(string idJson, string errorClass, string description)
        => $$"""{"error":{"class":"{{errorClass}}","desc":"{{description}}"},"id":{{idJson}}}""";

    /// <summary>The raw JSON of a command's id.</summary>
    public static string IdOf(QmpMessage command)
        => command.Id?.GetRawText() ?? throw new InvalidOperationException($"The command has no id: {command}");

    // ---- Connecting ----------------------------------------------------------------------

    /// <summary>Starts the client's <c>OpenAsync</c> on <see cref="ClientPipe"/> and returns its task (not awaited).</summary>
    public Task StartOpen(CancellationToken cancellationToken = default) => RequiredClient.OpenAsync(ClientPipe, cancellationToken);

    /// <summary>
    /// The standard exchange from the server's side: sends a greeting offering
    /// <paramref name="capabilities"/>, reads <c>qmp_capabilities</c> and answers it.
    /// </summary>
    /// <returns>The <c>qmp_capabilities</c> command the client sent.</returns>
    public async Task<QmpMessage> NegotiateAsync(params string[] capabilities)
    {
        await SendGreetingAsync(capabilities).ConfigureAwait(false);
        var command = await ReadCommandAsync("qmp_capabilities").ConfigureAwait(false);
        await ReplyAsync(command).ConfigureAwait(false);
        return command;
    }

    /// <summary>Opens the client on this peer and negotiates; returns once the client is <see cref="Runstate.Running"/>.</summary>
    /// <returns>The <c>qmp_capabilities</c> command the client sent.</returns>
    public async Task<QmpMessage> ConnectAsync(params string[] capabilities)
    {
        var opening = StartOpen();
        var command = await NegotiateAsync(capabilities).ConfigureAwait(false);
        await opening.Bounded().ConfigureAwait(false);
        return command;
    }

    /// <summary>Creates a client with <paramref name="options"/>, a peer for it, and connects them.</summary>
    public static async Task<ScriptedQmpPeer> ConnectNewAsync(QmpClientOptions? options = null, params string[] capabilities)
    {
        var peer = new ScriptedQmpPeer(new QmpClient(options));
        try
        {
            await peer.ConnectAsync(capabilities).ConfigureAwait(false);
            return peer;
        }
        catch
        {
            await peer.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    // ---- Writing -------------------------------------------------------------------------

    /// <summary>Writes <paramref name="text"/> as UTF-8, exactly (no line feed added), and flushes.</summary>
    public Task WriteRawAsync(string text) => WriteRawAsync(Encoding.UTF8.GetBytes(text));

    /// <summary>Writes <paramref name="bytes"/> exactly and flushes.</summary>
    public async Task WriteRawAsync(ReadOnlyMemory<byte> bytes)
    {
        var writer = _toClient.Writer;
        writer.Write(bytes.Span);
        await writer.FlushAsync().AsTask().Bounded().ConfigureAwait(false);
    }

    /// <summary>Writes one line (a line feed is added) and flushes.</summary>
    public Task WriteLineAsync(string line) => WriteLinesAsync(line);

    /// <summary>Writes every line (a line feed added to each) with a single flush: the client may read them in one go.</summary>
    public Task WriteLinesAsync(params string[] lines)
        => WriteRawAsync(string.Concat(lines.Select(line => line + "\n")));

    /// <summary>Sends a greeting offering <paramref name="capabilities"/>.</summary>
    public Task SendGreetingAsync(params string[] capabilities) => WriteLineAsync(GreetingJson(capabilities));

    /// <summary>Sends an event.</summary>
    public Task SendEventAsync(string name, string? dataJson = null) => WriteLineAsync(EventJson(name, dataJson));

    /// <summary>Answers <paramref name="command"/> (by its id) with <paramref name="valueJson"/>.</summary>
    public Task ReplyAsync(QmpMessage command, string valueJson = "{}") => WriteLineAsync(ReturnJson(IdOf(command), valueJson));

    /// <summary>Answers <paramref name="command"/> (by its id) with an error.</summary>
    public Task ReplyErrorAsync(QmpMessage command, string errorClass, string description)
        => WriteLineAsync(ErrorJson(IdOf(command), errorClass, description));

    /// <summary>Ends the stream towards the client (as a server closing its socket).</summary>
    public Task CloseAsync() => _toClient.Writer.CompleteAsync().AsTask().Bounded();

    /// <summary>Stops reading the client's output for good: its next flush reports the pipe completed.</summary>
    public Task StopReadingAsync() => _toPeer.Reader.CompleteAsync().AsTask().Bounded();

    /// <summary>Whether the client has completed its input (it reads no more of what the peer writes).</summary>
    public async Task<bool> ClientStoppedReadingAsync()
    {
        var flush = await _toClient.Writer.FlushAsync().AsTask().Bounded().ConfigureAwait(false);
        return flush.IsCompleted;
    }

    // ---- Reading -------------------------------------------------------------------------

    /// <summary>Reads the client's next line (terminator stripped).</summary>
    /// <exception cref="EndOfStreamException">The client closed its output first.</exception>
    public async Task<string> ReadLineAsync()
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        var reader = _toPeer.Reader;
        while (true)
        {
            var result = await reader.ReadAsync(bound.Token).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.PositionOf((byte)'\n') is { } lineFeed)
            {
                var line = Encoding.UTF8.GetString(buffer.Slice(0, lineFeed));
                reader.AdvanceTo(buffer.GetPosition(1, lineFeed));
                return line.TrimEnd('\r');
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new EndOfStreamException($"The client closed its output ({buffer.Length} bytes left without a line feed).");
            }
        }
    }

    /// <summary>
    /// Reads the client's next JSON value, as QEMU does (a value ends with its closing brace; a
    /// line feed after it is not needed), and parses it as a command.
    /// </summary>
    /// <param name="expectedName">When given, asserts the command's name.</param>
    public async Task<QmpMessage> ReadCommandAsync(string? expectedName = null)
    {
        var text = await ReadValueAsync().ConfigureAwait(false);
        var message = QmpMessage.Parse(text);
        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Command), $"the client sent a command: {text}");
        if (expectedName is not null)
        {
            Assert.That(message.CommandName, Is.EqualTo(expectedName), $"the client sent {expectedName}: {text}");
        }

        return message;
    }

    /// <summary>Reads the client's next top-level JSON value, as text.</summary>
    /// <exception cref="EndOfStreamException">The client closed its output first.</exception>
    private async Task<string> ReadValueAsync()
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        var reader = _toPeer.Reader;
        while (true)
        {
            var result = await reader.ReadAsync(bound.Token).ConfigureAwait(false);
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = buffer.Start;
            if (_values.TryReadMessage(buffer, ref consumed, ref examined, out var value))
            {
                var text = Encoding.UTF8.GetString(value);
                reader.AdvanceTo(consumed);
                return text;
            }

            if (result.IsCompleted && !buffer.IsEmpty && _values.TryReadFinalMessage(buffer, out var last))
            {
                var text = Encoding.UTF8.GetString(last);
                reader.AdvanceTo(buffer.End);
                return text;
            }

            reader.AdvanceTo(consumed, examined);
            if (result.IsCompleted)
            {
                throw new EndOfStreamException($"The client closed its output ({buffer.Length} bytes left that make no JSON value).");
            }
        }
    }

    /// <summary>Reads <paramref name="count"/> commands, in the order the client wrote them.</summary>
    public async Task<List<QmpMessage>> ReadCommandsAsync(int count)
    {
        var commands = new List<QmpMessage>(count);
        for (var i = 0; i < count; i++)
        {
            commands.Add(await ReadCommandAsync().ConfigureAwait(false));
        }

        return commands;
    }

    /// <summary>Reads until the client completes its output, and returns what was left unread, as text (whitespace between values aside).</summary>
    public async Task<string> ReadUntilClientClosesAsync()
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        var reader = _toPeer.Reader;
        while (true)
        {
            var result = await reader.ReadAsync(bound.Token).ConfigureAwait(false);
            if (result.IsCompleted)
            {
                var rest = Encoding.UTF8.GetString(result.Buffer);
                reader.AdvanceTo(result.Buffer.End);
                return rest.Trim();
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    // ---- Disposal ------------------------------------------------------------------------

    /// <summary>Disposes the client if it owns it (bounded), then completes the peer's ends.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Client is not null && _ownsClient)
            {
                await Client.DisposeAsync().Bounded().ConfigureAwait(false);
            }
        }
        finally
        {
            await _toClient.Writer.CompleteAsync().ConfigureAwait(false);
            await _toPeer.Reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private sealed class PipeEnds(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}

/// <summary>Bounded waits on a client and its listeners, for tests driven by a <see cref="ScriptedQmpPeer"/>.</summary>
internal static class QmpClientTestWaits
{
    /// <summary>
    /// Reads a listener to the end of its enumeration: the events it yielded, and the error it
    /// ended with (null when it ended normally). Bounded by <see cref="TestTimeouts.Default"/>.
    /// </summary>
    public static async Task<(List<QmpEvent> Events, Exception? Error)> DrainAsync(this QmpEventListener listener)
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        var events = new List<QmpEvent>();
        try
        {
            await foreach (var qmpEvent in listener.ReadAllAsync(bound.Token).ConfigureAwait(false))
            {
                events.Add(qmpEvent);
            }

            return (events, null);
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested)
        {
            throw new TimeoutException($"The listener's enumeration did not end within {TestTimeouts.Default} (it yielded {events.Count} events).");
        }
        catch (Exception ex)
        {
            return (events, ex);
        }
    }

    /// <summary>The names of events, in order.</summary>
    public static string[] Names(this IEnumerable<QmpEvent> events) => [.. events.Select(e => e.Name)];

    /// <summary>Reads the next <paramref name="count"/> events of a listener, bounded.</summary>
    public static async Task<List<QmpEvent>> ReadEventsAsync(this QmpEventListener listener, int count)
    {
        var events = new List<QmpEvent>(count);
        for (var i = 0; i < count; i++)
        {
            events.Add(await listener.ReadAsync().Bounded().ConfigureAwait(false));
        }

        return events;
    }

    /// <summary>Waits (polling) until the client is in <paramref name="state"/>, bounded.</summary>
    public static async Task WaitForRunstateAsync(this QmpClient client, Runstate state)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        while (client.Runstate != state)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The client stayed {client.Runstate}, never {state}, within {TestTimeouts.Default}.");
            }

            await Task.Delay(5).ConfigureAwait(false);
        }
    }
}
