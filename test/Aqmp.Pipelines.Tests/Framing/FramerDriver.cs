using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Framing;

/// <summary>
/// Drives a framer the way the session's read loop does: <see cref="IMessageFramer{TMessage}.TryReadMessage"/>
/// repeatedly on what is left of the buffer (sliced from <c>consumed</c>), until it asks for more bytes.
/// </summary>
internal static class FramerDriver
{
    /// <summary>
    /// Parses every whole frame in <paramref name="input"/>; returns the messages (each turned by
    /// <paramref name="snapshot"/> into something that outlives the buffer) and the unconsumed rest.
    /// Checks the framer's contract on positions at every call.
    /// </summary>
    public static (List<TResult> Messages, ReadOnlySequence<byte> Remainder) ReadAll<TMessage, TResult>(
        IMessageFramer<TMessage> framer, ReadOnlySequence<byte> input, Func<TMessage, TResult> snapshot)
    {
        var messages = new List<TResult>();
        var buffer = input;
        var consumed = buffer.Start;
        var examined = buffer.Start;
        while (true)
        {
            var consumedBefore = consumed;
            if (!framer.TryReadMessage(buffer, ref consumed, ref examined, out var message))
            {
                Assert.That(consumed, Is.EqualTo(consumedBefore), "consumed must be left alone when no message is returned");
                Assert.That(examined, Is.EqualTo(buffer.End), "examined must be the input's end when no message is returned");
                return (messages, buffer);
            }

            Assert.That(buffer.Slice(buffer.Start, consumed).Length, Is.GreaterThan(0), "a returned message must consume at least its terminator");
            Assert.That(buffer.Slice(examined).Length, Is.LessThanOrEqualTo(buffer.Slice(consumed).Length), "examined must not be before consumed");
            messages.Add(snapshot(message));
            buffer = buffer.Slice(consumed);
        }
    }

    /// <summary>
    /// The session's read loop in miniature: <paramref name="data"/> written into a pipe of
    /// <paramref name="segmentSize"/>-byte segments in random writes, every frame parsed per read,
    /// the <c>examined</c> position optionally carried from read to read as the session carries it.
    /// </summary>
    public static List<TResult> ReadThroughPipe<TMessage, TResult>(
        IMessageFramer<TMessage> framer, byte[] data, int segmentSize, Random random, bool carryExamined, Func<TMessage, TResult> snapshot)
    {
        var pipe = new Pipe(new PipeOptions(pool: new SmallBlockPool(segmentSize), minimumSegmentSize: segmentSize, pauseWriterThreshold: 0, useSynchronizationContext: false));
        var messages = new List<TResult>();
        SequencePosition resume = default;
        var written = 0;
        while (written < data.Length)
        {
            var chunk = Math.Min(random.Next(1, 200), data.Length - written);
            for (var piece = 0; piece < chunk; piece += segmentSize)
            {
                pipe.Writer.Write(data.AsSpan(written + piece, Math.Min(segmentSize, chunk - piece)));
            }

            written += chunk;
            Assert.That(pipe.Writer.FlushAsync().IsCompletedSuccessfully, Is.True);
            Assert.That(pipe.Reader.TryRead(out var result), Is.True);

            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = carryExamined && resume.GetObject() is not null ? resume : buffer.Start;
            while (framer.TryReadMessage(buffer, ref consumed, ref examined, out var message))
            {
                messages.Add(snapshot(message));
                buffer = buffer.Slice(consumed);
            }

            pipe.Reader.AdvanceTo(consumed, examined);
            resume = buffer.IsEmpty || examined.Equals(consumed) ? default : examined;
        }

        return messages;
    }
    /// <summary>
    /// Parses every whole frame of raw bytes in <paramref name="input"/> after three warm-up runs,
    /// measuring what that run allocated on this thread: the framing's own cost per frame.
    /// </summary>
    public static (long FrameBytes, long RemainderLength, long Allocated) CountFrameBytesMeasuringAllocation(
        IMessageFramer<ReadOnlySequence<byte>> framer, ReadOnlySequence<byte> input)
    {
        for (var warmUp = 0; warmUp < 3; warmUp++)
        {
            CountFrameBytes(framer, input, out _);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        var total = CountFrameBytes(framer, input, out var remainderLength);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        return (total, remainderLength, allocated);
    }

    // The session's read loop, minus the handler: no closures, no boxing, no collections.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static long CountFrameBytes(IMessageFramer<ReadOnlySequence<byte>> framer, ReadOnlySequence<byte> input, out long remainderLength)
    {
        var buffer = input;
        var consumed = buffer.Start;
        var examined = buffer.Start;
        long total = 0;
        while (framer.TryReadMessage(buffer, ref consumed, ref examined, out var message))
        {
            total += message.Length;
            buffer = buffer.Slice(consumed);
        }

        remainderLength = buffer.Length;
        return total;
    }
}
