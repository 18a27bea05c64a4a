using System.Buffers;

namespace Aqmp.Pipelines.Framing;

/// <summary>What the raw-bytes length-prefixed framers need of an outbound <see cref="ReadOnlySequence{T}"/> payload.</summary>
internal static class SequencePayload
{
    /// <summary>The payload's length as an <see cref="int"/>.</summary>
    /// <param name="message">The outbound payload.</param>
    /// <returns>Its length.</returns>
    /// <exception cref="ArgumentException">The payload is longer than <see cref="int.MaxValue"/> bytes.</exception>
    public static int Length(in ReadOnlySequence<byte> message)
        => message.Length <= int.MaxValue ? (int)message.Length : throw new ArgumentException("An outbound message is at most 2 GiB long.", nameof(message));
}
