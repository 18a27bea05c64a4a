namespace Aqmp.Pipelines.Transports;

/// <summary>
/// Told of every read that returned bytes and every batch the send loop handed to the socket or
/// stream of an <see cref="OwnedTransportConnection"/>: the hook for activity and byte counters,
/// called once per read or per sent batch, never per message. A connection without one pays a
/// null check.
/// </summary>
internal abstract class TransportActivity
{
    /// <summary>A read returned <paramref name="bytes"/> (at least one). Called on the reading flow; must be quick and not throw.</summary>
    public abstract void Received(int bytes);

    /// <summary>The send loop handed <paramref name="bytes"/> to the transport. Called on the send loop; must be quick and not throw.</summary>
    public abstract void Sent(long bytes);
}
