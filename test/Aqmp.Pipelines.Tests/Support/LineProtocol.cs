using System.Threading.Channels;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// A minimal line protocol for tests: records every received line, exposes SendAsync, and lets a
/// test plug in a handshake or a message handler.
/// </summary>
internal sealed class LineProtocol : PipeProtocol<string>
{
    private readonly Channel<string> _received = Channel.CreateUnbounded<string>();

    public LineProtocol(PipeProtocolOptions? options = null, ILoggerFactory? loggerFactory = null, string? name = null, Utf8LineFramer? framer = null)
        : base(framer ?? new Utf8LineFramer(), options, loggerFactory, name)
    {
    }

    /// <summary>Runs as EstablishSessionAsync: the handshake context receives and sends directly.</summary>
    public Func<LineProtocol, HandshakeContext<string>, CancellationToken, Task>? Handshake { get; set; }

    /// <summary>Runs for each inbound line before it is recorded.</summary>
    public Func<string, CancellationToken, ValueTask>? OnLine { get; set; }

    /// <summary>The root cause the session-ended hook saw, and whether it ran.</summary>
    public (bool Ran, Exception? RootCause) SessionEnded { get; private set; }

    public ChannelReader<string> Received => _received.Reader;

    public ValueTask SendLineAsync(string line, CancellationToken cancellationToken = default) => SendAsync(line, cancellationToken);

    public ValueTask SendLinesAsync(ReadOnlyMemory<string> lines, CancellationToken cancellationToken = default) => SendManyAsync(lines, cancellationToken);

    public async Task<string> NextLineAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        return await _received.Reader.ReadAsync(cts.Token);
    }

    /// <summary>The next <paramref name="count"/> received lines, all of them within the test timeout.</summary>
    public async Task<List<string>> NextLinesAsync(int count)
    {
        using var cts = new CancellationTokenSource(TestTimeouts.Default);
        var lines = new List<string>(count);
        while (lines.Count < count)
        {
            lines.Add(await _received.Reader.ReadAsync(cts.Token));
        }

        return lines;
    }

    protected override Task EstablishSessionAsync(HandshakeContext<string> handshake, CancellationToken cancellationToken)
        => Handshake?.Invoke(this, handshake, cancellationToken) ?? Task.CompletedTask;

    protected override async ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken)
    {
        if (OnLine is not null)
        {
            await OnLine(message, cancellationToken);
        }

        _received.Writer.TryWrite(message);
    }

    protected override ValueTask OnSessionEndedAsync(Exception? rootCause)
    {
        SessionEnded = (true, rootCause);
        return ValueTask.CompletedTask;
    }
}
