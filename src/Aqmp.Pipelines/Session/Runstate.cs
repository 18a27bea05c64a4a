namespace Aqmp.Pipelines.Session;

/// <summary>
/// The runstate of a <see cref="PipeProtocol{TMessage}"/> session.
/// </summary>
/// <remarks>
/// A session moves <see cref="Idle"/> → <see cref="Connecting"/> → <see cref="Running"/> →
/// <see cref="Disconnecting"/> → <see cref="Idle"/>. A failed or cancelled connection attempt
/// goes <see cref="Connecting"/> → <see cref="Disconnecting"/> → <see cref="Idle"/>.
/// </remarks>
public enum Runstate
{
    /// <summary>Fully quiesced and disconnected: no transport, no loops.</summary>
    Idle = 0,

    /// <summary>Connecting, listening, accepting or establishing a session (handshake).</summary>
    Connecting = 1,

    /// <summary>Fully connected; the read loop is running and messages can be sent.</summary>
    Running = 2,

    /// <summary>
    /// Disconnecting. A session that ended by itself (peer closed, loop failure) stays here until
    /// <see cref="PipeProtocol{TMessage}.DisconnectAsync(CancellationToken)"/> returns it to <see cref="Idle"/>.
    /// </summary>
    Disconnecting = 3,
}
