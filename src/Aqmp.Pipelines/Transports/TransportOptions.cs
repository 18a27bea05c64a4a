using System.IO.Pipelines;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// How a transport buffers and closes a connection.
/// </summary>
public sealed record TransportOptions
{
    /// <summary>Options of the pipe that carries outbound bytes to the socket or stream.</summary>
    public PipeOptions SendPipeOptions { get; init; } = PipeOptions.Default;

    /// <summary>Options of the pipe that carries inbound bytes from the socket or stream.</summary>
    public PipeOptions ReceivePipeOptions { get; init; } = PipeOptions.Default;

    /// <summary>
    /// How long a graceful close keeps reading (and discarding) inbound bytes after it has sent
    /// everything and closed the sending direction, waiting for the peer to close too. Closing a
    /// socket that still has unread inbound data makes the kernel reset the connection, which can
    /// destroy data the peer has not read yet; lingering avoids that. Zero closes at once.
    /// </summary>
    public TimeSpan LingerTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The options used when none are given.</summary>
    public static TransportOptions Default { get; } = new();
}
