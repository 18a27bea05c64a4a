using System.Buffers;
using System.Runtime.InteropServices;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Tests.Framing;

public class VarintLengthFramerSpecs
{
    private const int Limit = 1000;

    // Encoded by hand, independently of the framer's writer.
    private static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            var low = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? low : (byte)(low | 0x80));
        }
        while (value != 0);

        return [.. bytes];
    }

    private static byte[] Frame(byte[] payload) => [.. Varint((ulong)payload.Length), .. payload];

    private static byte[] Bytes(int length, int seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 31 + seed)).ToArray();

    // ---- Splitting and segmentation -------------------------------------------------------------

    [TestCase(0, 1, 127)]
    [TestCase(128, 300, 0)]
    [TestCase(0, 0, 0)]
    public void Every_frame_is_read_whole_however_the_stream_is_cut_into_segments(int first, int second, int third)
    {
        var payloads = new[] { first, second, third }.Select((length, i) => Bytes(length, i)).ToArray();
        var stream = payloads.SelectMany(Frame).ToArray();
        var framer = new VarintLengthFramer(maximumPayloadLength: 20_000);
        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(stream))
        {
            var (messages, remainder) = FramerSpecKit.ReadAll(framer, sequence);

            Assert.That(messages, Is.EqualTo(payloads), cut);
            Assert.That(remainder, Is.Empty, cut);
        }
    }

    [Test]
    public void A_partial_frame_yields_nothing_until_its_last_byte_arrives()
    {
        var frame = Frame(Bytes(130, 3));
        var framer = new VarintLengthFramer();
        for (var arrived = 0; arrived < frame.Length; arrived++)
        {
            var (messages, remainder) = FramerSpecKit.ReadAll(framer, SegmentedSequence.Split(frame[..arrived], Math.Min(arrived, 1)));

            Assert.That(messages, Is.Empty, $"{arrived} bytes");
            Assert.That(remainder, Has.Length.EqualTo(arrived), $"{arrived} bytes");
        }
    }

    [Test]
    public void Random_streams_cut_at_random_read_back_the_same_frames()
    {
        var random = FramerSpecKit.Seeded(20240602, out var seed);
        var framer = new VarintLengthFramer(maximumPayloadLength: 70_000);
        var payloads = Enumerable.Range(0, 100).Select(i => Bytes(random.Next(8) switch { 0 => 0, < 4 => random.Next(1, 128), < 7 => random.Next(128, 16384), _ => random.Next(16384, 70_000) }, i)).ToList();
        var stream = payloads.SelectMany(Frame).ToArray();
        for (var run = 0; run < 12; run++)
        {
            var (messages, remainder) = FramerSpecKit.ReadAll(framer, FramerSpecKit.RandomCut(stream, random));
            Assert.That(messages, Is.EqualTo(payloads), $"run {run}, {FramerSpecKit.Replay(seed)}");
            Assert.That(remainder, Is.Empty, $"run {run}, {FramerSpecKit.Replay(seed)}");

            var readSize = random.Next(1, 8192);
            var (fed, _, error) = FramerSpecKit.Feed(framer, stream, readSize);
            Assert.That(error, Is.Null, $"reads of {readSize}, {FramerSpecKit.Replay(seed)}");
            Assert.That(fed, Is.EqualTo(payloads), $"reads of {readSize}, {FramerSpecKit.Replay(seed)}");
        }
    }

    // ---- The varint -----------------------------------------------------------------------------

    [TestCase(new byte[] { 0x00 }, 0)]
    [TestCase(new byte[] { 0x7F }, 127)]
    [TestCase(new byte[] { 0x80, 0x01 }, 128)]
    [TestCase(new byte[] { 0xAC, 0x02 }, 300)]
    [TestCase(new byte[] { 0x83, 0x80, 0x00 }, 3)]
    [TestCase(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 }, 0)]
    public void A_varint_in_any_form_protobuf_accepts_gives_the_payload_length_including_longer_than_needed_ones(byte[] prefix, int length)
    {
        var stream = prefix.Concat(Bytes(length, 1)).ToArray();
        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(stream))
        {
            var (messages, remainder) = FramerSpecKit.ReadAll(new VarintLengthFramer(), sequence);

            Assert.That(messages.Single(), Is.EqualTo(Bytes(length, 1)), cut);
            Assert.That(remainder, Is.Empty, cut);
        }
    }

    [TestCase(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 }, "10 bytes")]
    [TestCase(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81 }, "10 bytes")]
    [TestCase(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02 }, "overflows")]
    [TestCase(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F }, "overflows")]
    public void A_varint_longer_than_10_bytes_or_over_64_bits_raises_FrameHeaderException_at_its_tenth_byte(byte[] prefix, string detail)
    {
        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(prefix[..10]))
        {
            var error = Assert.Throws<FrameHeaderException>(() => FramerSpecKit.ReadAll(new VarintLengthFramer(), sequence), cut);
            Assert.That(error!.Detail, Does.Contain(detail), cut);
        }
    }

    [Test]
    public void A_varint_of_2_to_the_63_is_well_formed_but_too_large()
    {
        var prefix = new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };

        Assert.Throws<FrameTooLargeException>(() => FramerSpecKit.ReadAll(new VarintLengthFramer(), new ReadOnlySequence<byte>(prefix)));
    }

    // ---- Maximum payload length -----------------------------------------------------------------

    [Test]
    public void A_payload_of_exactly_the_maximum_length_is_accepted()
    {
        var (messages, _) = FramerSpecKit.ReadAll(new VarintLengthFramer(Limit), new ReadOnlySequence<byte>(Frame(Bytes(Limit, 2))));

        Assert.That(messages.Single(), Has.Length.EqualTo(Limit));
    }

    [TestCase(1)]
    [TestCase(3)]
    [TestCase(512)]
    public void A_payload_one_byte_over_the_maximum_is_refused_from_its_prefix_before_more_than_the_maximum_plus_one_read_is_buffered(int readSize)
    {
        var frame = Frame(Bytes(Limit + 1, 2));

        var (messages, bufferedAtError, error) = FramerSpecKit.Feed(new VarintLengthFramer(Limit), frame, readSize);

        Assert.That(messages, Is.Empty);
        Assert.That(error, Is.TypeOf<FrameTooLargeException>());
        Assert.That(((FrameTooLargeException)error!).MaximumLength, Is.EqualTo(Limit));
        Assert.That(bufferedAtError, Is.LessThan(2 + readSize), "refused on the read that completed the prefix");
        Assert.That(bufferedAtError, Is.LessThanOrEqualTo(Limit + readSize));
    }

    [TestCase(100)]
    [TestCase(200)]
    [TestCase(20_000)]
    public void Lengths_around_the_maximum_in_shortest_and_padded_varints_are_accepted_up_to_it_whether_in_one_segment_or_cut(int maximum)
    {
        foreach (var length in new[] { maximum - 1, maximum, maximum + 1 })
        {
            var shortest = Varint((ulong)length);
            byte[] padded = [.. shortest[..^1], (byte)(shortest[^1] | 0x80), 0x00];
            foreach (var prefix in new[] { shortest, padded })
            {
                byte[] frame = [.. prefix, .. Bytes(length, 5)];
                foreach (var (input, shape) in new[] { (new ReadOnlySequence<byte>(frame), "one segment"), (SegmentedSequence.Split(frame, 1), "cut after the first byte") })
                {
                    var what = $"{length} in {prefix.Length} bytes ({shape})";
                    if (length <= maximum)
                    {
                        Assert.That(FramerSpecKit.ReadAll(new VarintLengthFramer(maximum), input).Messages.Single(), Has.Length.EqualTo(length), what);
                    }
                    else
                    {
                        Assert.That(() => FramerSpecKit.ReadAll(new VarintLengthFramer(maximum), input), Throws.TypeOf<FrameTooLargeException>(), what);
                    }
                }
            }
        }
    }

    [Test]
    public void An_incomplete_varint_whose_value_so_far_is_over_the_maximum_is_refused_before_its_last_byte()
    {
        // 0xFF alone already means at least 127: over a limit of 100 whatever follows.
        var error = Assert.Throws<FrameTooLargeException>(() => FramerSpecKit.ReadAll(new VarintLengthFramer(100), new ReadOnlySequence<byte>([0xFF])));

        Assert.That(error!.MaximumLength, Is.EqualTo(100));
    }

    [Test]
    public void A_maximum_of_zero_accepts_empty_payloads_only()
    {
        var framer = new VarintLengthFramer(0);

        var (messages, _) = FramerSpecKit.ReadAll(framer, new ReadOnlySequence<byte>([0, 0, 0]));
        Assert.That(messages, Has.Count.EqualTo(3));
        Assert.Throws<FrameTooLargeException>(() => FramerSpecKit.ReadAll(framer, new ReadOnlySequence<byte>([1, 9])));
    }

    // ---- End of stream --------------------------------------------------------------------------

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(50)]
    public void End_of_stream_in_a_partial_frame_raises_IncompleteFrameException_with_the_bytes_received(int received)
    {
        IMessageFramer<ReadOnlySequence<byte>> framer = new VarintLengthFramer();
        var partial = Frame(Bytes(200, 0))[..received];
        var (_, remainder) = FramerSpecKit.ReadAll(framer, new ReadOnlySequence<byte>(partial));

        var error = Assert.Throws<IncompleteFrameException>(() => framer.TryReadFinalMessage(new ReadOnlySequence<byte>(remainder), out _));

        Assert.That(error!.BytesReceived, Is.EqualTo(received));
    }

    // ---- Writing --------------------------------------------------------------------------------

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(127)]
    [TestCase(128)]
    [TestCase(16383)]
    [TestCase(16384)]
    [TestCase(300_000)]
    public void WriteMessage_writes_the_shortest_varint_of_the_length_then_the_payload(int length)
    {
        var payload = Bytes(length, 4);
        var output = new ArrayBufferWriter<byte>();

        new VarintLengthFramer().WriteMessage(SegmentedSequence.OfSegmentSize(payload, 1000), output);

        Assert.That(output.WrittenSpan.ToArray(), Is.EqualTo(Frame(payload)));
    }

    [TestCase(0UL, 1)]
    [TestCase(127UL, 1)]
    [TestCase(128UL, 2)]
    [TestCase((ulong)int.MaxValue, 5)]
    [TestCase(ulong.MaxValue, 10)]
    public void VarintLength_is_the_length_of_the_shortest_varint(ulong value, int length)
    {
        Assert.That(VarintLengthFramer.VarintLength(value), Is.EqualTo(length));
        Assert.That(Varint(value), Has.Length.EqualTo(length));
    }

    [Test]
    public void Written_messages_read_back_to_the_same_messages()
    {
        var framer = new VarintLengthFramer(maximumPayloadLength: 20_000);
        var payloads = new[] { 0, 1, 127, 128, 0, 16384, 5 }.Select(length => Bytes(length, length)).ToList();
        FramerSpecKit.AssertWrittenMessagesReadBack(framer, payloads);
    }

    // ---- Configuration --------------------------------------------------------------------------

    [TestCase(0, 1L)]
    [TestCase(127, 128L)]
    [TestCase(VarintLengthFramer<ReadOnlySequence<byte>>.DefaultMaximumPayloadLength, 1024L * 1024 + 3)]
    public void MaximumFrameLength_is_the_payload_limit_plus_the_prefix_that_encodes_it(int maximum, long frameLength)
    {
        IMessageFramer<ReadOnlySequence<byte>> framer = new VarintLengthFramer(maximum);

        Assert.That(framer.MaximumFrameLength, Is.EqualTo(frameLength));
        Assert.That(((VarintLengthFramer)framer).MaximumPayloadLength, Is.EqualTo(maximum));
    }

    [Test]
    public void Constructor_rejects_a_negative_maximum()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new VarintLengthFramer(-1));
    }

    // ---- Zero copy and allocation ---------------------------------------------------------------

    [Test]
    public void A_message_read_from_a_single_segment_points_into_the_same_backing_array()
    {
        var backing = Frame([10, 11, 12]).Concat(Frame(Bytes(200, 0))).ToArray();
        var (found, _) = FramerDriver.ReadAll(new VarintLengthFramer(), new ReadOnlySequence<byte>(backing), message =>
        {
            Assert.That(MemoryMarshal.TryGetArray(message.First, out var segment), Is.True);
            return (segment.Array, segment.Offset, segment.Count);
        });

        Assert.That(found, Is.EqualTo(new[] { (backing, 1, 3), (backing, 6, 200) }));
    }

    [TestCase(0)]
    [TestCase(1000)]
    public void Reading_a_thousand_frames_allocates_nothing(int segmentSize)
    {
        var stream = Enumerable.Range(0, 1000).SelectMany(i => Frame(Bytes(i % 200, i))).ToArray();
        var input = segmentSize == 0 ? new ReadOnlySequence<byte>(stream) : SegmentedSequence.OfSegmentSizeWithoutCopying(stream, segmentSize);

        var (_, remainder, allocated) = FramerDriver.CountFrameBytesMeasuringAllocation(new VarintLengthFramer(), input);

        Assert.That(remainder, Is.Zero);
        Assert.That(allocated, Is.Zero);
    }
}
