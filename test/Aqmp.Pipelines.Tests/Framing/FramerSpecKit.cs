using System.Buffers;
using System.IO.Pipelines;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Tests.Framing;

/// <summary>
/// What the specifications of the raw-bytes framers share: every way of cutting a stream into
/// segments, seeded random cuts, feeding a stream read by read, and reading every frame as arrays.
/// </summary>
internal static class FramerSpecKit
{
    /// <summary>The environment variable that replays a fuzzing seed, as in the reliability suite.</summary>
    public const string SeedVariable = "AQMP_FUZZ_SEED";

    /// <summary>A generator seeded with <c>AQMP_FUZZ_SEED</c> when set, else with <paramref name="fixedSeed"/>; the seed is printed.</summary>
    public static Random Seeded(int fixedSeed, out int seed)
    {
        seed = int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), out var replayed) ? replayed : fixedSeed;
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.FullName}: seed {seed} (replay with {SeedVariable}={seed})");
        return new Random(seed);
    }

    /// <summary>The message to attach to every assertion of a seeded test.</summary>
    public static string Replay(int seed) => $"seed {seed}: replay with {SeedVariable}={seed}";

    /// <summary>
    /// <paramref name="data"/> as one segment, cut in two at every byte, cut in three at every pair
    /// of bytes (for up to 64 bytes), and in one-byte segments; each with a description.
    /// </summary>
    public static IEnumerable<(ReadOnlySequence<byte> Sequence, string Cut)> EveryCut(byte[] data)
    {
        yield return (new ReadOnlySequence<byte>(data), "one segment");
        for (var split = 0; split <= data.Length; split++)
        {
            yield return (SegmentedSequence.Split(data, split), $"split at {split}");
        }

        if (data.Length <= 64)
        {
            for (var first = 0; first <= data.Length; first++)
            {
                for (var second = first; second <= data.Length; second++)
                {
                    yield return (SegmentedSequence.Split(data, first, second), $"split at {first} and {second}");
                }
            }
        }

        yield return (SegmentedSequence.OfSegmentSize(data, 1), "one-byte segments");
    }

    /// <summary><paramref name="data"/> cut at up to 2,000 random points (from none to one every few bytes, empty segments included).</summary>
    public static ReadOnlySequence<byte> RandomCut(byte[] data, Random random)
    {
        var count = random.Next(0, Math.Min(2000, data.Length / random.Next(1, 16)) + 1);
        var points = Enumerable.Range(0, count).Select(_ => random.Next(0, data.Length + 1)).Order().ToArray();
        return SegmentedSequence.Split(data, points);
    }

    /// <summary>Every whole frame of <paramref name="input"/> as an array, and the unconsumed rest.</summary>
    public static (List<byte[]> Messages, byte[] Remainder) ReadAll(IMessageFramer<ReadOnlySequence<byte>> framer, ReadOnlySequence<byte> input)
    {
        var (messages, remainder) = FramerDriver.ReadAll(framer, input, message => message.ToArray());
        return (messages, remainder.ToArray());
    }

    /// <summary>
    /// Feeds <paramref name="data"/> through a pipe <paramref name="readSize"/> bytes at a time, the
    /// session's way: every frame of each read parsed, the reader advanced to the positions the
    /// framer reports (<c>examined</c> carried). Returns the frames read, and how many bytes were
    /// buffered when the framer threw with the error (or nulls if it never did).
    /// </summary>
    public static (List<byte[]> Messages, long? BufferedAtError, ProtocolException? Error) Feed(IMessageFramer<ReadOnlySequence<byte>> framer, byte[] data, int readSize)
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        var messages = new List<byte[]>();
        SequencePosition resume = default;
        for (var read = 0; read < data.Length; read += readSize)
        {
            pipe.Writer.Write(data.AsSpan(read, Math.Min(readSize, data.Length - read)));
            Assert.That(pipe.Writer.FlushAsync().IsCompletedSuccessfully, Is.True);
            Assert.That(pipe.Reader.TryRead(out var result), Is.True);
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = resume.GetObject() is not null ? resume : buffer.Start;
            try
            {
                while (framer.TryReadMessage(buffer, ref consumed, ref examined, out var message))
                {
                    messages.Add(message.ToArray());
                    buffer = buffer.Slice(consumed);
                }
            }
            catch (ProtocolException error)
            {
                return (messages, buffer.Length, error);
            }

            pipe.Reader.AdvanceTo(consumed, examined);
            resume = buffer.IsEmpty || examined.Equals(consumed) ? default : examined;
        }

        return (messages, null, null);
    }

    /// <summary>
    /// Writes <paramref name="payloads"/> with <paramref name="framer"/> and checks that the bytes
    /// written read back to the same payloads, in one segment and in segments of a few bytes.
    /// </summary>
    public static void AssertWrittenMessagesReadBack(IMessageFramer<ReadOnlySequence<byte>> framer, IReadOnlyList<byte[]> payloads)
    {
        var output = new ArrayBufferWriter<byte>();
        foreach (var payload in payloads)
        {
            framer.WriteMessage(new ReadOnlySequence<byte>(payload), output);
        }

        var written = output.WrittenSpan.ToArray();
        foreach (var (sequence, cut) in new[] { (new ReadOnlySequence<byte>(written), "one segment"), (SegmentedSequence.OfSegmentSize(written, 3), "3-byte segments") })
        {
            var (messages, remainder) = ReadAll(framer, sequence);
            Assert.That(messages, Is.EqualTo(payloads), cut);
            Assert.That(remainder, Is.Empty, cut);
        }
    }
}
