namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Raised by a framer when a byte can be neither part of the frame it is reading nor the start
/// of the next one (for the JSON-stream framer: a byte that cannot start a value between values,
/// such as a stray <c>}</c> or <c>]</c>, a comma, or a control byte). The session that reads it
/// ends, and this is the error its disconnect reports.
/// </summary>
public class UnexpectedByteException : ProtocolException
{
    /// <summary>Creates the error.</summary>
    /// <param name="value">The offending byte.</param>
    /// <param name="offset">
    /// Where it lies, in bytes from the start of the frame being read: the first byte not yet
    /// consumed, whitespace before a value included.
    /// </param>
    /// <param name="expected">What the framer expected there, in words (say, "the start of a JSON value").</param>
    public UnexpectedByteException(byte value, long offset, string expected)
        : base($"Unexpected byte 0x{value:X2}{Printable(value)} at offset {offset} of the frame: expected {expected}.")
    {
        Value = value;
        Offset = offset;
    }

    /// <summary>The offending byte.</summary>
    public byte Value { get; }

    /// <summary>Where the byte lies, in bytes from the start of the frame (the first byte not yet consumed).</summary>
    public long Offset { get; }

    private static string Printable(byte value) => value is >= 0x21 and < 0x7F ? $" ('{(char)value}')" : "";
}
