namespace Aqmp.Pipelines.Server;

/// <summary>Why a server's connection ended; the <c>aqmp.session.end_reason</c> tag of its metrics.</summary>
public enum SessionEndReason
{
    /// <summary>Disconnected without error: by the server (shutdown), or by the session's own code.</summary>
    Graceful,

    /// <summary>The peer closed the connection (<see cref="EndOfStreamException"/>).</summary>
    PeerClosed,

    /// <summary>The connection failed: reset by the peer, or another transport error.</summary>
    Reset,

    /// <summary>The peer sent bytes the framer rejected (a <see cref="ProtocolException"/> from framing).</summary>
    FrameError,

    /// <summary>The session's own code (a message handler, a hook) raised an error.</summary>
    Error,

    /// <summary>The TLS handshake or the session's handshake failed before the session ran.</summary>
    HandshakeFailed,

    /// <summary>The TLS handshake and session handshake were not done within the handshake timeout.</summary>
    HandshakeTimeout,

    /// <summary>Nothing was received or sent for the idle timeout.</summary>
    IdleTimeout,

    /// <summary>Closed at once on accept: the server had its maximum of sessions.</summary>
    Refused,

    /// <summary>Cut short by the server stopping: a handshake under way, or a session that did not end by the shutdown deadline.</summary>
    Aborted,
}
