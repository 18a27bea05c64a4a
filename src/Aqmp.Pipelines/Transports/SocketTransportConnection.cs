using System.Net;
using Pipelines.Sockets.Unofficial;

namespace Aqmp.Pipelines.Transports;

/// <summary>A plain (unencrypted) socket, through Pipelines.Sockets.Unofficial's <see cref="SocketConnection"/>.</summary>
internal sealed class SocketTransportConnection : OwnedTransportConnection
{
    private readonly SocketConnection _connection;

    public SocketTransportConnection(SocketConnection connection, TransportOptions options)
        : base(connection, options.LingerTimeout)
    {
        _connection = connection;
        LocalEndPoint = TryGet(() => connection.Socket.LocalEndPoint);
        RemoteEndPoint = TryGet(() => connection.Socket.RemoteEndPoint);
    }

    public override EndPoint? LocalEndPoint { get; }

    public override EndPoint? RemoteEndPoint { get; }

    protected override long BytesDelivered => _connection.BytesSent;

    protected override void Release() => _connection.Dispose();

    internal static EndPoint? TryGet(Func<EndPoint?> read)
    {
        try
        {
            return read();
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            return null;
        }
    }
}
