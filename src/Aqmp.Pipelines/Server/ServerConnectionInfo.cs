using System.Net;

namespace Aqmp.Pipelines.Server;

/// <summary>
/// What a <see cref="PipeProtocolServer{TMessage}"/> knows of an accepted connection when it asks
/// its factory for a session: addresses, transport, whether TLS is used, and when it was accepted.
/// </summary>
public sealed class ServerConnectionInfo
{
    internal ServerConnectionInfo(long id, EndPoint listenEndPoint, EndPoint? localEndPoint, EndPoint? remoteEndPoint, bool isTls)
    {
        Id = id;
        ListenEndPoint = listenEndPoint;
        LocalEndPoint = localEndPoint;
        RemoteEndPoint = remoteEndPoint;
        IsTls = isTls;
        Transport = listenEndPoint is System.Net.Sockets.UnixDomainSocketEndPoint ? ServerTransportKind.Unix : ServerTransportKind.Tcp;
        AcceptedAt = DateTimeOffset.UtcNow;
    }

    /// <summary>The connection's number within its server, from 1, in accept order.</summary>
    public long Id { get; }

    /// <summary>The address of the listener that accepted the connection.</summary>
    public EndPoint ListenEndPoint { get; }

    /// <summary>The connection's local address, when the socket reports one.</summary>
    public EndPoint? LocalEndPoint { get; }

    /// <summary>The peer's address, when the socket reports one (an unnamed Unix-domain client has none worth showing).</summary>
    public EndPoint? RemoteEndPoint { get; }

    /// <summary>Whether the session runs over TLS (the handshake is part of the session's handshake time).</summary>
    public bool IsTls { get; }

    /// <summary>TCP or Unix-domain.</summary>
    public ServerTransportKind Transport { get; }

    /// <summary>When the connection was accepted (UTC).</summary>
    public DateTimeOffset AcceptedAt { get; }

    /// <inheritdoc />
    public override string ToString() => $"#{Id} {Transport}{(IsTls ? "+TLS" : string.Empty)} {RemoteEndPoint} -> {ListenEndPoint}";
}
