namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Raised by a framer when an inbound frame exceeds its configured maximum length.
/// The session that reads it ends, and this is the error its disconnect reports.
/// </summary>
public class FrameTooLargeException : ProtocolException
{
    /// <summary>Creates the error.</summary>
    /// <param name="maximumLength">The configured limit, in bytes, excluding any delimiter.</param>
    /// <param name="observedLength">
    /// How many bytes of the frame had been received when the limit was found exceeded
    /// (the frame may be longer still).
    /// </param>
    public FrameTooLargeException(long maximumLength, long observedLength)
        : base($"Inbound frame exceeds the maximum length of {maximumLength} bytes ({observedLength} bytes received without the frame ending).")
    {
        MaximumLength = maximumLength;
        ObservedLength = observedLength;
    }

    /// <summary>The configured limit, in bytes, excluding any delimiter.</summary>
    public long MaximumLength { get; }

    /// <summary>How many bytes of the frame had been received when the limit was found exceeded.</summary>
    public long ObservedLength { get; }
}
