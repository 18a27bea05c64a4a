using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Samples.Echo;

/// <summary>Answers every line with "echo: " and the line.</summary>
internal sealed class EchoServer() : PipeProtocol<string>(new Utf8LineFramer(), name: "server")
{
    protected override ValueTask OnMessageAsync(string line, MessageContext<string> context, CancellationToken cancellationToken)
        => context.SendAsync($"echo: {line}", cancellationToken);
}
