using System.Buffers;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// A JSON-stream framer of raw bytes: each inbound message is one top-level JSON value's bytes,
/// with no copy; see <see cref="JsonStreamFramer{TMessage}"/> for what ends a value, what is
/// checked, the limits, and why an instance serves one session at a time.
/// </summary>
/// <remarks>
/// An inbound message is a slice of the pipe's memory (no whitespace around it), valid until the
/// session's <c>OnMessageAsync</c> for it completes: copy it (<c>ToArray()</c>) to keep it.
/// An outbound message is any <see cref="ReadOnlySequence{T}"/> the caller owns that holds exactly
/// one JSON value; it is written as it is (not checked), followed by the separator, and is copied
/// as it is framed, so it must stay unchanged only until the call that sends it returns.
/// </remarks>
public sealed class JsonStreamFramer : JsonStreamFramer<ReadOnlySequence<byte>>
{
    /// <summary>Creates a JSON-stream framer of raw bytes.</summary>
    /// <param name="maximumValueLength">The longest accepted value in bytes; at least 1.</param>
    /// <param name="maximumDepth">How many objects and arrays may be open inside each other; at least 1.</param>
    /// <param name="separator">What is written after each value: whitespace only, or empty for nothing.</param>
    /// <exception cref="ArgumentOutOfRangeException">A limit is below 1.</exception>
    /// <exception cref="ArgumentException"><paramref name="separator"/> holds something other than whitespace.</exception>
    public JsonStreamFramer(int maximumValueLength = DefaultMaximumValueLength, int maximumDepth = DefaultMaximumDepth, string separator = DefaultSeparator)
        : base(maximumValueLength, maximumDepth, separator)
    {
    }

    /// <inheritdoc />
    protected override ReadOnlySequence<byte> DecodeValue(in ReadOnlySequence<byte> value) => value;

    /// <inheritdoc />
    protected override void EncodeValue(ReadOnlySequence<byte> message, IBufferWriter<byte> output)
    {
        foreach (var segment in message)
        {
            output.Write(segment.Span);
        }
    }
}
