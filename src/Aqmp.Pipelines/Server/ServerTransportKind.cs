namespace Aqmp.Pipelines.Server;

/// <summary>The kind of socket a server accepted a connection on.</summary>
public enum ServerTransportKind
{
    /// <summary>TCP over IPv4 or IPv6.</summary>
    Tcp,

    /// <summary>A Unix-domain stream socket.</summary>
    Unix,
}
