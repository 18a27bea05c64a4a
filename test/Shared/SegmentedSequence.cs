using System.Buffers;

namespace Aqmp.Pipelines.Testing;

/// <summary>
/// Builds multi-segment <see cref="ReadOnlySequence{T}"/> values of bytes, the shape a
/// <see cref="System.IO.Pipelines.PipeReader"/> hands out when data arrived in several reads.
/// </summary>
/// <remarks>
/// <para>
/// Shared by the test and benchmark projects: each one compiles this file in through a link in its
/// project file, so it stays internal to every assembly that uses it.
/// </para>
/// <para>
/// Every method but <see cref="OfSegmentSizeWithoutCopying"/> backs each segment with its own array
/// (a copy of that part of the input), as a pipe holds data that came in several reads, so a test can
/// tell the segments apart and nothing is shared with the caller's input. Empty chunks are kept as
/// empty segments; they are legal in a <see cref="ReadOnlySequence{T}"/>.
/// </para>
/// </remarks>
internal static class SegmentedSequence
{
    /// <summary>A sequence with one segment per chunk, in order, each a copy of its chunk.</summary>
    /// <param name="chunks">The content of each segment.</param>
    /// <returns>The sequence; <see cref="ReadOnlySequence{T}.Empty"/> when there are no chunks.</returns>
    public static ReadOnlySequence<byte> FromChunks(params byte[][] chunks)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        var copies = new ReadOnlyMemory<byte>[chunks.Length];
        for (var i = 0; i < chunks.Length; i++)
        {
            copies[i] = chunks[i].ToArray();
        }

        return Chain(copies);
    }

    /// <summary>A sequence with one segment per chunk, each chunk's string encoded as UTF-8.</summary>
    /// <param name="chunks">The content of each segment.</param>
    /// <returns>The sequence; <see cref="ReadOnlySequence{T}.Empty"/> when there are no chunks.</returns>
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
    /// <param name="data">The content.</param>
    /// <param name="splitPoints">Where one segment ends and the next begins.</param>
    /// <returns>The sequence, each segment a copy of its part of <paramref name="data"/>.</returns>
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

    /// <summary>
    /// <paramref name="data"/> copied into separate arrays of <paramref name="segmentSize"/> bytes
    /// (the last may be shorter), chained as one sequence.
    /// </summary>
    /// <param name="data">The content.</param>
    /// <param name="segmentSize">The size of every segment but the last; at least 1.</param>
    /// <returns>The sequence; one empty segment when <paramref name="data"/> is empty.</returns>
    public static ReadOnlySequence<byte> OfSegmentSize(byte[] data, int segmentSize)
    {
        ArgumentNullException.ThrowIfNull(data);
        return OfSegmentSize(data.AsSpan(), segmentSize);
    }

    /// <summary>
    /// <paramref name="data"/> copied into separate arrays of <paramref name="segmentSize"/> bytes
    /// (the last may be shorter), chained as one sequence, as a pipe holds a long message.
    /// </summary>
    /// <param name="data">The content.</param>
    /// <param name="segmentSize">The size of every segment but the last; at least 1.</param>
    /// <returns>The sequence; one empty segment when <paramref name="data"/> is empty.</returns>
    public static ReadOnlySequence<byte> OfSegmentSize(ReadOnlySpan<byte> data, int segmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(segmentSize, 1);
        if (data.IsEmpty)
        {
            return Chain([Array.Empty<byte>()]);
        }

        var copies = new ReadOnlyMemory<byte>[(data.Length + segmentSize - 1) / segmentSize];
        for (var i = 0; i < copies.Length; i++)
        {
            var offset = i * segmentSize;
            copies[i] = data.Slice(offset, Math.Min(segmentSize, data.Length - offset)).ToArray();
        }

        return Chain(copies);
    }

    /// <summary>
    /// <paramref name="data"/> cut into segments of <paramref name="segmentSize"/> bytes (the last may
    /// be shorter) that are windows on <paramref name="data"/> itself: nothing is copied, so the
    /// segments lie next to each other in one array.
    /// </summary>
    /// <param name="data">The content.</param>
    /// <param name="segmentSize">The size of every segment but the last; at least 1.</param>
    /// <returns>The sequence; one empty segment when <paramref name="data"/> is empty.</returns>
    public static ReadOnlySequence<byte> OfSegmentSizeWithoutCopying(ReadOnlyMemory<byte> data, int segmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(segmentSize, 1);
        if (data.IsEmpty)
        {
            return Chain([data]);
        }

        var windows = new ReadOnlyMemory<byte>[(data.Length + segmentSize - 1) / segmentSize];
        for (var i = 0; i < windows.Length; i++)
        {
            var offset = i * segmentSize;
            windows[i] = data.Slice(offset, Math.Min(segmentSize, data.Length - offset));
        }

        return Chain(windows);
    }

    /// <summary>How many segments <paramref name="sequence"/> is made of.</summary>
    /// <param name="sequence">The sequence.</param>
    /// <returns>The number of segments, empty ones included.</returns>
    public static int SegmentCount(in ReadOnlySequence<byte> sequence)
    {
        var count = 0;
        foreach (var _ in sequence)
        {
            count++;
        }

        return count;
    }

    /// <summary>Chains <paramref name="segments"/> as they are, without copying, into one sequence.</summary>
    /// <param name="segments">The memory of each segment, in order.</param>
    /// <returns>The sequence; <see cref="ReadOnlySequence{T}.Empty"/> when there are no segments.</returns>
    private static ReadOnlySequence<byte> Chain(ReadOnlyMemory<byte>[] segments)
    {
        if (segments.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(segments[0], runningIndex: 0);
        var last = first;
        for (var i = 1; i < segments.Length; i++)
        {
            last = last.Append(segments[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>One link of a hand-built chain of segments.</summary>
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        /// <summary>Creates a segment over <paramref name="memory"/> with no successor yet.</summary>
        /// <param name="memory">The segment's bytes.</param>
        /// <param name="runningIndex">The total length of the segments before this one.</param>
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        /// <summary>Creates the segment that follows this one and links it as <see cref="ReadOnlySequenceSegment{T}.Next"/>.</summary>
        /// <param name="memory">The next segment's bytes.</param>
        /// <returns>The new segment.</returns>
        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
