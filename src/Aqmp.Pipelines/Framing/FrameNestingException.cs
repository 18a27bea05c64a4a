namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Raised by a framer when an inbound frame nests deeper than its configured maximum (for the
/// JSON-stream framer: objects and arrays opened inside each other). Raised at the opening bracket
/// that goes over the limit, before the rest of the frame is buffered. The session that reads it
/// ends, and this is the error its disconnect reports.
/// </summary>
public class FrameNestingException : ProtocolException
{
    /// <summary>Creates the error.</summary>
    /// <param name="maximumDepth">The configured limit: how many levels may be open at once.</param>
    /// <param name="offset">Where the opening bracket over the limit lies, in bytes from the start of the frame (the first byte not yet consumed).</param>
    public FrameNestingException(int maximumDepth, long offset)
        : base($"Inbound frame nests deeper than the maximum depth of {maximumDepth} (at offset {offset} of the frame).")
    {
        MaximumDepth = maximumDepth;
        Offset = offset;
    }

    /// <summary>The configured limit: how many levels may be open at once.</summary>
    public int MaximumDepth { get; }

    /// <summary>Where the opening bracket over the limit lies, in bytes from the start of the frame.</summary>
    public long Offset { get; }
}
