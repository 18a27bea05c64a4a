using System.Buffers;
using System.Runtime.InteropServices;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Tests.Framing;

public class LengthFieldFramerSpecs
{
    private const int Limit = 1024;

    /// <summary>
    /// A header layout, and frames built by hand for it: <see cref="Offset"/> bytes of 0xA5, the
    /// field holding the length of what follows it less <see cref="Adjustment"/>, then that.
    /// </summary>
    public sealed record Layout(int FieldLength, int Offset = 0, int Adjustment = 0, int? Strip = null, ByteOrder Order = ByteOrder.BigEndian)
    {
        public int HeaderLength => Offset + FieldLength;

        public LengthFieldFramer Framer(int maximumFrameLength = Limit) => new(FieldLength, Offset, Adjustment, Strip, Order, maximumFrameLength);

        public byte[] Frame(byte[] afterField) => [.. Header((ulong)(afterField.Length - Adjustment)), .. afterField];

        public byte[] Header(ulong fieldValue) => [.. Enumerable.Repeat((byte)0xA5, Offset), .. Field(fieldValue, FieldLength, Order)];

        public byte[] Message(byte[] frame) => frame[(Strip ?? HeaderLength)..];

        public override string ToString() => $"{FieldLength}-byte {Order} field at {Offset}, adjustment {Adjustment}, strip {Strip?.ToString() ?? "header"}";
    }

    private static byte[] Field(ulong value, int length, ByteOrder order)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[order == ByteOrder.BigEndian ? length - 1 - i : i] = (byte)(value >> (8 * i));
        }

        return bytes;
    }

    private static IEnumerable<Layout> Layouts()
    {
        foreach (var fieldLength in new[] { 1, 2, 3, 4, 8 })
        {
            yield return new Layout(fieldLength);
            yield return new Layout(fieldLength, Order: ByteOrder.LittleEndian);
        }

        // The layouts of DotNetty's LengthFieldBasedFrameDecoder documentation.
        yield return new Layout(2, Strip: 0);
        yield return new Layout(2, Adjustment: -2, Strip: 0);
        yield return new Layout(3, Offset: 2, Strip: 0);
        yield return new Layout(3, Adjustment: 2, Strip: 0);
        yield return new Layout(2, Offset: 1, Adjustment: 1, Strip: 3);
        yield return new Layout(2, Offset: 1, Adjustment: -3, Strip: 3);
        yield return new Layout(4, Offset: 3, Adjustment: -7, Order: ByteOrder.LittleEndian);
    }

    private static IEnumerable<TestCaseData> LayoutCases() => Layouts().Select(layout => new TestCaseData(layout).SetArgDisplayNames(layout.ToString()));

    // A 1-byte field cannot announce the default test limit.
    private static int LimitFor(int fieldLength) => fieldLength == 1 ? 200 : Limit;

    private static byte[] Bytes(int length, int seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 31 + seed)).ToArray();

    /// <summary>Frames whose part after the field is the adjustment's worth (an empty payload) or more.</summary>
    private static byte[][] SampleFrames(Layout layout, params int[] payloadLengths)
        => payloadLengths.Select((length, i) => layout.Frame(Bytes(length + Math.Max(0, layout.Adjustment), i))).ToArray();

    // ---- Splitting and segmentation -------------------------------------------------------------

    [TestCaseSource(nameof(LayoutCases))]
    public void Every_frame_is_read_whole_however_the_stream_is_cut_into_segments(Layout layout)
    {
        var frames = SampleFrames(layout, 0, 5, 17);
        var stream = frames.SelectMany(f => f).ToArray();
        var expected = frames.Select(layout.Message).ToList();
        var framer = layout.Framer();
        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(stream))
        {
            var (messages, remainder) = FramerSpecKit.ReadAll(framer, sequence);

            Assert.That(messages, Is.EqualTo(expected), cut);
            Assert.That(remainder, Is.Empty, cut);
        }
    }

    [TestCaseSource(nameof(LayoutCases))]
    public void A_partial_frame_yields_nothing_until_its_last_byte_arrives(Layout layout)
    {
        var frame = SampleFrames(layout, 9)[0];
        var framer = layout.Framer();
        for (var arrived = 0; arrived < frame.Length; arrived++)
        {
            foreach (var (sequence, cut) in FramerSpecKit.EveryCut(frame[..arrived]))
            {
                var (messages, remainder) = FramerSpecKit.ReadAll(framer, sequence);

                Assert.That(messages, Is.Empty, $"{arrived} bytes, {cut}");
                Assert.That(remainder, Has.Length.EqualTo(arrived), $"{arrived} bytes, {cut}");
            }
        }
    }

    [Test]
    public void Random_streams_cut_at_random_read_back_the_same_frames()
    {
        var random = FramerSpecKit.Seeded(20240601, out var seed);
        foreach (var layout in Layouts())
        {
            var framer = layout.Framer(maximumFrameLength: 64 * 1024);
            var largest = layout.FieldLength == 1 ? 200 : 3000;
            var frames = Enumerable.Range(0, 60).Select(i => layout.Frame(Bytes(random.Next(Math.Max(0, layout.Adjustment), largest), i))).ToArray();
            var stream = frames.SelectMany(f => f).ToArray();
            var expected = frames.Select(layout.Message).ToList();
            for (var run = 0; run < 20; run++)
            {
                var (messages, remainder) = FramerSpecKit.ReadAll(framer, FramerSpecKit.RandomCut(stream, random));
                Assert.That(messages, Is.EqualTo(expected), $"{layout}, run {run}, {FramerSpecKit.Replay(seed)}");
                Assert.That(remainder, Is.Empty, $"{layout}, run {run}, {FramerSpecKit.Replay(seed)}");

                var readSize = random.Next(1, 4096);
                var (fed, _, error) = FramerSpecKit.Feed(framer, stream, readSize);
                Assert.That(error, Is.Null, $"{layout}, reads of {readSize}, {FramerSpecKit.Replay(seed)}");
                Assert.That(fed, Is.EqualTo(expected), $"{layout}, reads of {readSize}, {FramerSpecKit.Replay(seed)}");
            }
        }
    }

    // ---- Zero-length frames ---------------------------------------------------------------------

    [TestCaseSource(nameof(LayoutCases))]
    public void Frames_with_an_empty_payload_are_read_as_messages_of_the_header_alone_or_empty(Layout layout)
    {
        var frames = SampleFrames(layout, 0, 0, 0);
        var (messages, remainder) = FramerSpecKit.ReadAll(layout.Framer(), new ReadOnlySequence<byte>(frames.SelectMany(f => f).ToArray()));

        Assert.That(messages, Is.EqualTo(frames.Select(layout.Message)));
        Assert.That(remainder, Is.Empty);
    }

    // ---- Maximum frame length -------------------------------------------------------------------

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    [TestCase(8)]
    public void A_frame_of_exactly_the_maximum_length_header_included_is_accepted(int fieldLength)
    {
        var layout = new Layout(fieldLength);
        var limit = LimitFor(fieldLength);
        var frame = layout.Frame(Bytes(limit - fieldLength, 1));

        var (messages, _) = FramerSpecKit.ReadAll(layout.Framer(limit), new ReadOnlySequence<byte>(frame));

        Assert.That(messages.Single(), Has.Length.EqualTo(limit - fieldLength));
    }

    [TestCase(1, 1)]
    [TestCase(4, 1)]
    [TestCase(4, 100)]
    [TestCase(8, 4096)]
    public void A_frame_one_byte_over_the_maximum_is_refused_once_its_header_is_read_before_more_than_the_maximum_plus_one_read_is_buffered(int fieldLength, int readSize)
    {
        var layout = new Layout(fieldLength, Offset: 1);
        var limit = LimitFor(fieldLength);
        var frame = layout.Frame(Bytes(limit - layout.HeaderLength + 1, 1));

        var (messages, bufferedAtError, error) = FramerSpecKit.Feed(layout.Framer(limit), frame, readSize);

        Assert.That(messages, Is.Empty);
        Assert.That(error, Is.TypeOf<FrameTooLargeException>());
        Assert.That(((FrameTooLargeException)error!).MaximumLength, Is.EqualTo(limit));
        Assert.That(bufferedAtError, Is.LessThan(layout.HeaderLength + readSize), "refused on the read that completed the header");
        Assert.That(bufferedAtError, Is.LessThanOrEqualTo(limit + readSize));
    }

    [TestCase(4, 0xFFFF_FFFFUL)]
    [TestCase(8, (ulong)long.MaxValue)]
    [TestCase(8, (ulong)long.MaxValue - 3)]
    public void A_length_too_large_to_add_the_header_to_is_refused_as_too_large_not_wrapped_around(int fieldLength, ulong value)
    {
        var layout = new Layout(fieldLength, Offset: 2, Adjustment: 7);

        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(layout.Header(value)))
        {
            Assert.Throws<FrameTooLargeException>(() => FramerSpecKit.ReadAll(layout.Framer(), sequence), cut);
        }
    }

    [Test]
    public void Frames_before_an_oversize_one_are_delivered_before_it_raises()
    {
        var layout = new Layout(2);
        var stream = layout.Frame([1, 2]).Concat(layout.Frame(Bytes(Limit, 0))).ToArray();
        var framer = layout.Framer();
        var buffer = new ReadOnlySequence<byte>(stream);
        var consumed = buffer.Start;
        var examined = buffer.Start;

        Assert.That(framer.TryReadMessage(buffer, ref consumed, ref examined, out var first), Is.True);
        Assert.That(first.ToArray(), Is.EqualTo(new byte[] { 1, 2 }));
        var rest = buffer.Slice(consumed);
        Assert.Throws<FrameTooLargeException>(() => FramerSpecKit.ReadAll(framer, rest));
    }

    // ---- Malformed headers ----------------------------------------------------------------------

    [TestCase(ByteOrder.BigEndian)]
    [TestCase(ByteOrder.LittleEndian)]
    public void An_8_byte_length_with_its_top_bit_set_is_negative_and_raises_FrameHeaderException(ByteOrder order)
    {
        var layout = new Layout(8, Order: order);

        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(layout.Header(0x8000_0000_0000_0001UL)))
        {
            var error = Assert.Throws<FrameHeaderException>(() => FramerSpecKit.ReadAll(layout.Framer(), sequence), cut);
            Assert.That(error!.Detail, Does.Contain("negative"), cut);
        }
    }

    [Test]
    public void A_length_that_once_adjusted_is_shorter_than_nothing_raises_FrameHeaderException()
    {
        // The field counts the header (adjustment -4), but holds 3.
        var layout = new Layout(4, Adjustment: -4, Strip: 0);

        foreach (var (sequence, cut) in FramerSpecKit.EveryCut([.. layout.Header(3), 9, 9, 9]))
        {
            var error = Assert.Throws<FrameHeaderException>(() => FramerSpecKit.ReadAll(layout.Framer(), sequence), cut);
            Assert.That(error, Is.InstanceOf<ProtocolException>());
        }
    }

    [Test]
    public void A_frame_shorter_than_the_bytes_to_strip_raises_FrameHeaderException()
    {
        var layout = new Layout(2, Strip: 5);

        var error = Assert.Throws<FrameHeaderException>(() => FramerSpecKit.ReadAll(layout.Framer(), new ReadOnlySequence<byte>(layout.Frame([7, 7]))));

        Assert.That(error!.Detail, Does.Contain("strip"));
    }

    [TestCase(8, 0, 0, null, 0x8000_0000_0000_0001UL, "negative")]
    [TestCase(4, 0, -4, 0, 3UL, "shorter than its")]
    [TestCase(2, 0, 0, 5, 2UL, "strip")]
    [TestCase(3, 2, 0, null, 5000UL, null)]
    public void A_malformed_or_oversize_header_followed_by_many_bytes_in_one_segment_raises_as_when_it_ends_the_buffer(int fieldLength, int offset, int adjustment, int? strip, ulong value, string? detail)
    {
        var layout = new Layout(fieldLength, offset, adjustment, strip);
        byte[] stream = [.. layout.Header(value), .. Bytes(40, 1)];

        foreach (var input in new[] { new ReadOnlySequence<byte>(stream), new ReadOnlySequence<byte>(layout.Header(value)) })
        {
            if (detail is null)
            {
                Assert.Throws<FrameTooLargeException>(() => FramerSpecKit.ReadAll(layout.Framer(), input));
            }
            else
            {
                var error = Assert.Throws<FrameHeaderException>(() => FramerSpecKit.ReadAll(layout.Framer(), input));
                Assert.That(error!.Detail, Does.Contain(detail));
            }
        }
    }

    private static IEnumerable<TestCaseData> BoundaryLayouts()
    {
        yield return new TestCaseData(new Layout(2), 40).SetArgDisplayNames("2-byte field, limit 40");
        yield return new TestCaseData(new Layout(2, Adjustment: -2, Strip: 0), 40).SetArgDisplayNames("field counts the header");
        yield return new TestCaseData(new Layout(1, Offset: 1, Adjustment: 3, Strip: 7), 30).SetArgDisplayNames("strip past the header");
        yield return new TestCaseData(new Layout(4, Adjustment: -10, Strip: 2, Order: ByteOrder.LittleEndian), 25).SetArgDisplayNames("adjustment below the header");
        yield return new TestCaseData(new Layout(3, Offset: 2, Adjustment: 50), 20).SetArgDisplayNames("no value fits the limit");
        yield return new TestCaseData(new Layout(8, Adjustment: -3), 16).SetArgDisplayNames("8-byte field");
    }

    [TestCaseSource(nameof(BoundaryLayouts))]
    public void Every_length_near_the_bounds_is_accepted_or_refused_as_the_header_rule_says_whether_the_frame_is_in_one_segment_or_cut(Layout layout, int maximumFrameLength)
    {
        // The rule, checked one condition at a time: the frame is header + value + adjustment long.
        var largestValue = maximumFrameLength - layout.HeaderLength - layout.Adjustment + 3;
        for (var value = 0L; value <= Math.Max(largestValue, 3); value++)
        {
            var frameLength = layout.HeaderLength + value + layout.Adjustment;
            var expected = frameLength < layout.HeaderLength ? typeof(FrameHeaderException)
                : frameLength > maximumFrameLength ? typeof(FrameTooLargeException)
                : frameLength < (layout.Strip ?? layout.HeaderLength) ? typeof(FrameHeaderException)
                : null;

            byte[] stream = [.. layout.Header((ulong)value), .. Bytes((int)Math.Max(0, frameLength - layout.HeaderLength), 3)];
            var oneSegment = new ReadOnlySequence<byte>(stream);
            var cut = SegmentedSequence.Split(stream, layout.HeaderLength - 1);
            foreach (var (input, shape) in new[] { (oneSegment, "one segment"), (cut, "cut in the header") })
            {
                var what = $"value {value} ({shape})";
                if (expected is null)
                {
                    var (messages, remainder) = FramerSpecKit.ReadAll(layout.Framer(maximumFrameLength), input);
                    Assert.That(messages.Single(), Is.EqualTo(layout.Message(stream)), what);
                    Assert.That(remainder, Is.Empty, what);
                }
                else
                {
                    Assert.That(() => FramerSpecKit.ReadAll(layout.Framer(maximumFrameLength), input), Throws.TypeOf(expected), what);
                }
            }
        }
    }

    // ---- End of stream --------------------------------------------------------------------------

    [Test]
    public void End_of_stream_in_a_partial_frame_raises_IncompleteFrameException_with_the_bytes_received()
    {
        IMessageFramer<ReadOnlySequence<byte>> framer = new LengthFieldFramer();
        var stream = new Layout(4).Frame(Bytes(10, 0));
        var (_, remainder) = FramerSpecKit.ReadAll(framer, SegmentedSequence.Split(stream[..9], 3));

        var error = Assert.Throws<IncompleteFrameException>(() => framer.TryReadFinalMessage(new ReadOnlySequence<byte>(remainder), out _));

        Assert.That(error!.BytesReceived, Is.EqualTo(9));
        Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
    }

    // ---- Writing --------------------------------------------------------------------------------

    [TestCase(1, ByteOrder.BigEndian, false, 0, new byte[] { 3, 1, 2, 3 })]
    [TestCase(2, ByteOrder.BigEndian, false, 0, new byte[] { 0, 3, 1, 2, 3 })]
    [TestCase(2, ByteOrder.LittleEndian, false, 0, new byte[] { 3, 0, 1, 2, 3 })]
    [TestCase(3, ByteOrder.BigEndian, true, 0, new byte[] { 0, 0, 6, 1, 2, 3 })]
    [TestCase(3, ByteOrder.LittleEndian, false, 2, new byte[] { 5, 0, 0, 1, 2, 3 })]
    [TestCase(4, ByteOrder.BigEndian, true, -1, new byte[] { 0, 0, 0, 6, 1, 2, 3 })]
    [TestCase(8, ByteOrder.LittleEndian, false, 0, new byte[] { 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3 })]
    public void WriteMessage_writes_the_length_field_then_the_payload(int fieldLength, ByteOrder order, bool includesField, int adjustment, byte[] expected)
    {
        var framer = new LengthFieldFramer(fieldLength, byteOrder: order, writtenLengthIncludesLengthField: includesField, writtenLengthAdjustment: adjustment);
        var output = new ArrayBufferWriter<byte>();

        framer.WriteMessage(SegmentedSequence.FromChunks([1], [], [2, 3]), output);

        Assert.That(output.WrittenSpan.ToArray(), Is.EqualTo(expected));
    }

    [TestCase(1, 256, 0)]
    [TestCase(2, 65535, 1)]
    [TestCase(1, 0, -1)]
    public void Writing_a_length_the_field_cannot_hold_throws_ArgumentException_and_writes_nothing(int fieldLength, int payloadLength, int adjustment)
    {
        var framer = new LengthFieldFramer(fieldLength, writtenLengthAdjustment: adjustment);
        var output = new ArrayBufferWriter<byte>();

        Assert.Throws<ArgumentException>(() => framer.WriteMessage(new ReadOnlySequence<byte>(new byte[payloadLength]), output));

        Assert.That(output.WrittenCount, Is.Zero);
    }

    [TestCase(1, ByteOrder.BigEndian, false)]
    [TestCase(2, ByteOrder.LittleEndian, true)]
    [TestCase(3, ByteOrder.BigEndian, true)]
    [TestCase(4, ByteOrder.LittleEndian, false)]
    [TestCase(8, ByteOrder.BigEndian, true)]
    public void Written_messages_read_back_to_the_same_messages(int fieldLength, ByteOrder order, bool lengthIncludesField)
    {
        var framer = new LengthFieldFramer(
            fieldLength,
            lengthAdjustment: lengthIncludesField ? -fieldLength : 0,
            byteOrder: order,
            maximumFrameLength: 64 * 1024,
            writtenLengthIncludesLengthField: lengthIncludesField);
        var payloads = new[] { 0, 1, 2, 200, 255 - fieldLength, 0 }.Select(length => Bytes(length, length)).ToList();
        FramerSpecKit.AssertWrittenMessagesReadBack(framer, payloads);
    }

    // ---- Configuration --------------------------------------------------------------------------

    [Test]
    public void The_defaults_are_a_4_byte_big_endian_length_of_the_payload_alone_stripped_and_a_1_MiB_limit()
    {
        var framer = new LengthFieldFramer();

        Assert.That(framer.LengthFieldLength, Is.EqualTo(4));
        Assert.That(framer.LengthFieldOffset, Is.Zero);
        Assert.That(framer.LengthAdjustment, Is.Zero);
        Assert.That(framer.InitialBytesToStrip, Is.EqualTo(4));
        Assert.That(framer.ByteOrder, Is.EqualTo(ByteOrder.BigEndian));
        Assert.That(framer.MaximumFrameLength, Is.EqualTo(1024 * 1024));
        Assert.That(((IMessageFramer<ReadOnlySequence<byte>>)framer).MaximumFrameLength, Is.EqualTo(1024 * 1024));
        Assert.That(framer.WrittenLengthIncludesLengthField, Is.False);
        Assert.That(framer.WrittenLengthAdjustment, Is.Zero);
    }

    [Test]
    public void By_default_the_whole_header_offset_included_is_stripped()
    {
        Assert.That(new LengthFieldFramer(2, lengthFieldOffset: 3).InitialBytesToStrip, Is.EqualTo(5));
    }

    [TestCase(0, 0, 0, 100)]
    [TestCase(5, 0, 0, 100)]
    [TestCase(16, 0, 0, 100)]
    [TestCase(4, -1, 0, 100)]
    [TestCase(4, 0, -1, 100)]
    [TestCase(4, 2, 0, 5)]
    public void Constructor_rejects_options_out_of_range(int fieldLength, int offset, int strip, int maximum)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LengthFieldFramer(fieldLength, offset, initialBytesToStrip: strip, maximumFrameLength: maximum));
    }

    [Test]
    public void Constructor_rejects_an_undefined_byte_order()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LengthFieldFramer(byteOrder: (ByteOrder)7));
    }

    // ---- Zero copy and allocation ---------------------------------------------------------------

    [Test]
    public void A_message_read_from_a_single_segment_points_into_the_same_backing_array()
    {
        var layout = new Layout(2);
        var backing = layout.Frame([10, 11, 12]).Concat(layout.Frame([13])).ToArray();
        var (found, _) = FramerDriver.ReadAll(layout.Framer(), new ReadOnlySequence<byte>(backing), message =>
        {
            Assert.That(MemoryMarshal.TryGetArray(message.First, out var segment), Is.True);
            return (segment.Array, segment.Offset, segment.Count);
        });

        Assert.That(found, Is.EqualTo(new[] { (backing, 2, 3), (backing, 7, 1) }));
    }

    [TestCase(0)]
    [TestCase(1000)]
    public void Reading_a_thousand_frames_allocates_nothing(int segmentSize)
    {
        var layout = new Layout(4);
        var stream = Enumerable.Range(0, 1000).SelectMany(i => layout.Frame(Bytes(i % 100, i))).ToArray();
        var input = segmentSize == 0 ? new ReadOnlySequence<byte>(stream) : SegmentedSequence.OfSegmentSizeWithoutCopying(stream, segmentSize);

        var (_, remainder, allocated) = FramerDriver.CountFrameBytesMeasuringAllocation(layout.Framer(), input);

        Assert.That(remainder, Is.Zero);
        Assert.That(allocated, Is.Zero);
    }
}
