namespace Aqmp.Pipelines;

/// <summary>
/// Base class of every error raised by Aqmp.Pipelines itself (QEMU aqmp's <c>QMPError</c>).
/// </summary>
/// <remarks>
/// Transport failures (<see cref="System.Net.Sockets.SocketException"/>, <see cref="IOException"/>,
/// <see cref="EndOfStreamException"/>) and the caller's own cancellation
/// (<see cref="OperationCanceledException"/>) are surfaced as they are, or wrapped in a
/// <see cref="Session.ConnectException"/> while a connection is being established.
/// </remarks>
public class ProtocolException : Exception
{
    /// <summary>Creates an error with a message.</summary>
    /// <param name="message">A human-readable description of the error.</param>
    public ProtocolException(string message) : base(message)
    {
    }

    /// <summary>Creates an error with a message and the exception that caused it.</summary>
    /// <param name="message">A human-readable description of the error.</param>
    /// <param name="innerException">The root cause.</param>
    public ProtocolException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}
