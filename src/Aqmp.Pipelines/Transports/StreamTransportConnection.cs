using System.Net;
using System.Net.Security;
using Pipelines.Sockets.Unofficial;

namespace Aqmp.Pipelines.Transports;

/// <summary>A stream (e.g. an <see cref="SslStream"/> over a socket), through Pipelines.Sockets.Unofficial's <see cref="StreamConnection"/>.</summary>
internal sealed class StreamTransportConnection : OwnedTransportConnection
{
    private readonly CountingStream _stream;

    private StreamTransportConnection(CountingStream stream, TransportOptions options, EndPoint? local, EndPoint? remote)
        : base(StreamConnection.GetDuplex(stream, options.SendPipeOptions, options.ReceivePipeOptions), options.LingerTimeout)
    {
        _stream = stream;
        LocalEndPoint = local;
        RemoteEndPoint = remote;
    }

    public override EndPoint? LocalEndPoint { get; }

    public override EndPoint? RemoteEndPoint { get; }

    protected override long BytesDelivered => _stream.BytesWritten;

    public static StreamTransportConnection Create(Stream stream, TransportOptions options, EndPoint? local = null, EndPoint? remote = null)
        => new(new CountingStream(stream), options, local, remote);

    protected override async ValueTask ShutdownSendAsync(CancellationToken cancellationToken)
    {
        if (_stream.Inner is SslStream tls)
        {
            await tls.ShutdownAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    protected override void Release()
    {
        try
        {
            _stream.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // Disposing a broken stream may report the breakage again; it is released either way.
        }
    }
}
