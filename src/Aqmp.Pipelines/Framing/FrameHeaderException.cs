namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Raised by a framer when the header that announces a frame's length cannot be a valid one: a
/// negative length, a length smaller than the header itself once adjusted, more header bytes to
/// strip than the frame holds, or a varint that runs past its longest form. Raised as soon as the
/// header is read, before the frame's body is buffered. The session that reads it ends, and this is
/// the error its disconnect reports.
/// </summary>
public class FrameHeaderException : ProtocolException
{
    /// <summary>Creates the error.</summary>
    /// <param name="detail">What is wrong with the header, in words.</param>
    public FrameHeaderException(string detail)
        : base($"Malformed frame header: {detail}.")
    {
        Detail = detail;
    }

    /// <summary>What is wrong with the header, in words.</summary>
    public string Detail { get; }
}
