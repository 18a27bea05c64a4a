using System.Threading.Channels;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Samples.Echo;

/// <summary>Sends a line and waits for the next line the server sends back.</summary>
internal sealed class EchoClient() : PipeProtocol<string>(new Utf8LineFramer(), name: "client")
{
    private readonly Channel<string> _replies = Channel.CreateUnbounded<string>();

    public async Task<string> RequestAsync(string line, CancellationToken cancellationToken = default)
    {
        await SendAsync(line, cancellationToken);
        return await _replies.Reader.ReadAsync(cancellationToken);
    }

    protected override ValueTask OnMessageAsync(string line, MessageContext<string> context, CancellationToken cancellationToken)
    {
        _replies.Writer.TryWrite(line);
        return ValueTask.CompletedTask;
    }
}
