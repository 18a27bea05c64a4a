using System.Buffers;
using System.Threading.Channels;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>A protocol of binary messages over any framer; copies each inbound message out of the pipe.</summary>
internal sealed class BlobProtocol(IMessageFramer<ReadOnlySequence<byte>> framer, PipeProtocolOptions? options = null)
    : PipeProtocol<ReadOnlySequence<byte>>(framer, options)
{
    private readonly Channel<byte[]> _received = Channel.CreateUnbounded<byte[]>();

    public ChannelReader<byte[]> Received => _received.Reader;

    public ValueTask SendBlobAsync(byte[] payload, CancellationToken cancellationToken = default)
        => SendAsync(new ReadOnlySequence<byte>(payload), cancellationToken);

    protected override ValueTask OnMessageAsync(ReadOnlySequence<byte> message, MessageContext<ReadOnlySequence<byte>> context, CancellationToken cancellationToken)
    {
        _received.Writer.TryWrite(message.ToArray());
        return ValueTask.CompletedTask;
    }
}
