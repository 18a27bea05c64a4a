namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Raised when the peer ends the stream in the middle of a frame: some bytes arrived but no
/// complete frame could be made of them (QEMU aqmp's partial <c>readline()</c> at EOF).
/// </summary>
/// <remarks>
/// <see cref="Exception.InnerException"/> is an <see cref="EndOfStreamException"/>, so the cause
/// reads as "the peer went away mid-message".
/// </remarks>
public class IncompleteFrameException : ProtocolException
{
    /// <summary>Creates the error.</summary>
    /// <param name="bytesReceived">How many bytes of the unfinished frame were received.</param>
    public IncompleteFrameException(long bytesReceived)
        : base($"The peer ended the stream in the middle of a frame ({bytesReceived} bytes received without the frame ending).",
               new EndOfStreamException("The peer closed the connection."))
    {
        BytesReceived = bytesReceived;
    }

    /// <summary>How many bytes of the unfinished frame were received.</summary>
    public long BytesReceived { get; }
}
