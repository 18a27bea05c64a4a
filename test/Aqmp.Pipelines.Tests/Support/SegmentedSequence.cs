using System.Buffers;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// Builds multi-segment <see cref="ReadOnlySequence{T}"/> values of bytes, the shape a
/// <see cref="System.IO.Pipelines.PipeReader"/> hands out when data arrived in several reads.
/// </summary>
/// <remarks>
/// Every segment is backed by its own array (a copy of the chunk), so a test can tell the
/// segments apart and nothing is shared with the caller's input. Empty chunks are kept as empty
/// segments; they are legal in a <see cref="ReadOnlySequence{T}"/>.
/// </remarks>
internal static class SegmentedSequence
{
    /// <summary>A sequence with one segment per chunk, in order.</summary>
    public static ReadOnlySequence<byte> FromChunks(params byte[][] chunks)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        if (chunks.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(chunks[0].ToArray(), runningIndex: 0);
        var last = first;
        for (var i = 1; i < chunks.Length; i++)
        {
            last = last.Append(chunks[i].ToArray());
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>A sequence with one segment per chunk, each chunk's string encoded as UTF-8.</summary>
    public static ReadOnlySequence<byte> FromChunks(params string[] chunks)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        return FromChunks(chunks.Select(System.Text.Encoding.UTF8.GetBytes).ToArray());
    }

    /// <summary>
    /// <paramref name="data"/> cut at each of <paramref name="splitPoints"/> (offsets into
    /// <paramref name="data"/>, ascending, from 0 to its length inclusive): n split points give
    /// n + 1 segments. A split point at 0 or at the end, or a repeated one, gives an empty segment.
    /// </summary>
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] splitPoints)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(splitPoints);
        var chunks = new List<byte[]>(splitPoints.Length + 1);
        var start = 0;
        foreach (var point in splitPoints)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(point, start, nameof(splitPoints));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(point, data.Length, nameof(splitPoints));
            chunks.Add(data[start..point]);
            start = point;
        }

        chunks.Add(data[start..]);
        return FromChunks(chunks.ToArray());
    }

    /// <summary><paramref name="data"/> cut into segments of <paramref name="segmentSize"/> bytes (the last may be shorter).</summary>
    public static ReadOnlySequence<byte> OfSegmentSize(byte[] data, int segmentSize)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(segmentSize, 1);
        if (data.Length == 0)
        {
            return FromChunks(Array.Empty<byte>());
        }

        return FromChunks(data.Chunk(segmentSize).ToArray());
    }

    /// <summary>How many segments <paramref name="sequence"/> is made of.</summary>
    public static int SegmentCount(in ReadOnlySequence<byte> sequence)
    {
        var count = 0;
        foreach (var _ in sequence)
        {
            count++;
        }

        return count;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
