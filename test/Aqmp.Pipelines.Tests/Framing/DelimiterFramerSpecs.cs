using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Tests.Framing;

public class DelimiterFramerSpecs
{
    private const int Limit = 16;

    // Inputs are ASCII: Latin-1 maps each byte to the char of the same value and back.
    private static byte[] Bytes(string text) => Encoding.Latin1.GetBytes(text);

    private static string Text(byte[] bytes) => Encoding.Latin1.GetString(bytes);

    private static DelimiterFramer Framer(string[] delimiters, int maximumPayloadLength = 1 << 20, bool stripDelimiter = true)
        => new(delimiters.Select(Bytes), maximumPayloadLength, stripDelimiter);

    private static (List<string> Frames, string Remainder) Read(DelimiterFramer framer, ReadOnlySequence<byte> input)
    {
        var (messages, remainder) = FramerSpecKit.ReadAll(framer, input);
        return (messages.Select(Text).ToList(), Text(remainder));
    }

    /// <summary>
    /// The rule, applied to a whole stream at once: the delimiter that starts earliest ends a frame;
    /// of two at the same byte, the one listed first.
    /// </summary>
    private static (List<string> Frames, string Remainder) Reference(string stream, string[] delimiters, bool stripDelimiter = true)
    {
        var frames = new List<string>();
        var start = 0;
        while (true)
        {
            var matches = delimiters.Select(d => (At: stream.IndexOf(d, start, StringComparison.Ordinal), d.Length)).Where(m => m.At >= 0).ToList();
            if (matches.Count == 0)
            {
                return (frames, stream[start..]);
            }

            var (at, length) = matches.MinBy(m => m.At);
            frames.Add(stream[start..(stripDelimiter ? at : at + length)]);
            start = at + length;
        }
    }

    private static IEnumerable<TestCaseData> Streams()
    {
        yield return new TestCaseData(new[] { "\r\n" }, "one\r\ntwo\rthree\n\r\n\r\nlast\r").SetArgDisplayNames("CRLF");
        yield return new TestCaseData(new[] { "\0" }, "a\0\0bc\0d").SetArgDisplayNames("NUL");
        yield return new TestCaseData(new[] { "END" }, "xEND\nENENDyEEND\nENDE").SetArgDisplayNames("END");
        yield return new TestCaseData(new[] { "aba" }, "xabababa\nabab").SetArgDisplayNames("self-overlapping");
        yield return new TestCaseData(new[] { "\r\n", "\n" }, "a\r\nb\nc\r\r\nd\n\r").SetArgDisplayNames("CRLF or LF");
        yield return new TestCaseData(new[] { "\n", "\r\n" }, "a\r\nb\nc\r\r\nd\n\r").SetArgDisplayNames("LF or CRLF");
        yield return new TestCaseData(new[] { "b", "abc" }, "xabcyabz").SetArgDisplayNames("a long one that starts earlier");
        yield return new TestCaseData(new[] { "\r", "\r\n" }, "a\r\nb\rc\r").SetArgDisplayNames("tie: the first listed");
        yield return new TestCaseData(new[] { "\r\n", "\r" }, "a\r\nb\rc\rd").SetArgDisplayNames("tie: the longer listed first");
    }

    // ---- Splitting and segmentation -------------------------------------------------------------

    [TestCaseSource(nameof(Streams))]
    public void Every_frame_is_the_bytes_up_to_the_earliest_delimiter_however_the_stream_is_cut_into_segments_and_keeps_its_delimiter_unless_stripped(string[] delimiters, string stream)
    {
        foreach (var strip in new[] { true, false })
        {
            var (expected, expectedRemainder) = Reference(stream, delimiters, strip);
            var framer = Framer(delimiters, stripDelimiter: strip);
            foreach (var (sequence, cut) in FramerSpecKit.EveryCut(Bytes(stream)))
            {
                var (frames, remainder) = Read(framer, sequence);

                Assert.That(frames, Is.EqualTo(expected), $"strip {strip}, {cut}");
                Assert.That(remainder, Is.EqualTo(expectedRemainder), $"strip {strip}, {cut}");
            }
        }
    }

    [Test]
    public void A_delimiter_found_is_not_final_while_an_earlier_starting_one_may_still_complete()
    {
        // "b" is complete, but "abc" started before it and may yet end with the next byte.
        var framer = Framer(["b", "abc"]);

        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes("xab"))), Is.EqualTo((new List<string>(), "xab")));
        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes("xabc"))), Is.EqualTo((new List<string> { "x" }, "")));
        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes("xabd"))), Is.EqualTo((new List<string> { "xa" }, "d")));
    }

    [Test]
    public void A_shorter_delimiter_at_the_end_waits_while_a_longer_one_listed_before_it_may_complete_at_the_same_byte()
    {
        var framer = Framer(["\r\n", "\r"]);

        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes("a\r"))), Is.EqualTo((new List<string>(), "a\r")));
        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes("a\r\n"))), Is.EqualTo((new List<string> { "a" }, "")));
        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes("a\rb"))), Is.EqualTo((new List<string> { "a" }, "b")));
    }

    [Test]
    public void Random_streams_cut_at_random_read_back_the_frames_the_rule_gives_on_the_whole_stream()
    {
        var random = FramerSpecKit.Seeded(20240603, out var seed);
        string[][] delimiterSets = [["\r\n"], ["\n", "\r\n"], ["\r\n", "\r", "\n"], ["abc", "b"], ["aa"], ["aba"], ["ab", "ba", "abc"], ["\r\n\r\n"]];
        const string alphabet = "abc\r\nx";
        foreach (var delimiters in delimiterSets)
        {
            var framer = Framer(delimiters);
            for (var run = 0; run < 40; run++)
            {
                // Ends with a byte of no delimiter: the rule's remainder is then final.
                var stream = new string(Enumerable.Range(0, random.Next(0, 600)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray()) + "Z";
                var expected = Reference(stream, delimiters);
                var context = $"{string.Join("|", delimiters).ReplaceLineEndings("\\n")}, run {run}, {FramerSpecKit.Replay(seed)}";

                Assert.That(Read(framer, FramerSpecKit.RandomCut(Bytes(stream), random)), Is.EqualTo(expected), context);

                var (fed, _, error) = FramerSpecKit.Feed(framer, Bytes(stream), random.Next(1, 64));
                Assert.That(error, Is.Null, context);
                Assert.That(fed.Select(Text), Is.EqualTo(expected.Frames), context);
            }
        }
    }

    [TestCase(1)]
    [TestCase(5)]
    [TestCase(300)]
    public void A_long_frame_arriving_over_many_reads_is_read_whole_when_the_search_resumes_where_it_stopped(int readSize)
    {
        var payloads = new[] { new string('x', 5000), "", new string('y', 3000) + "\r" };
        var stream = Bytes(string.Concat(payloads.Select(p => p + "\r\n")));

        var (fed, _, error) = FramerSpecKit.Feed(Framer(["\r\n"]), stream, readSize);

        Assert.That(error, Is.Null);
        Assert.That(fed.Select(Text), Is.EqualTo(payloads));
    }

    // ---- Zero-length frames ---------------------------------------------------------------------

    [TestCase("\r\n")]
    [TestCase("END")]
    [TestCase("\r\n\r\n")]
    [TestCase("\r\n|\n")]
    [TestCase("abc|b")]
    public void Frames_longer_than_a_segment_are_cut_at_their_delimiters_wherever_segment_boundaries_fall_in_them(string delimiterList)
    {
        var delimiters = delimiterList.Split('|');
        var stream = $"{new string('x', 40)}{delimiters[0]}{new string('y', 23)}{delimiters[^1]}{delimiters[0]}z{delimiters[0]}rest";
        foreach (var strip in new[] { true, false })
        {
            var expected = Reference(stream, delimiters, strip);
            var framer = Framer(delimiters, stripDelimiter: strip);
            for (var segmentSize = 1; segmentSize <= 9; segmentSize++)
            {
                Assert.That(Read(framer, SegmentedSequence.OfSegmentSize(Bytes(stream), segmentSize)), Is.EqualTo(expected), $"strip {strip}, {segmentSize}-byte segments");
            }
        }
    }

    [Test]
    public void Consecutive_delimiters_are_empty_frames()
    {
        Assert.That(Read(Framer(["\r\n"]), new ReadOnlySequence<byte>(Bytes("\r\n\r\n\r\n"))), Is.EqualTo((new List<string> { "", "", "" }, "")));
    }

    // ---- Maximum payload length -----------------------------------------------------------------

    [TestCase("\n")]
    [TestCase("\r\n")]
    public void A_payload_of_exactly_the_maximum_length_is_accepted(string delimiter)
    {
        var payload = new string('x', Limit);

        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(Bytes(payload + delimiter)))
        {
            Assert.That(Read(Framer([delimiter], Limit), sequence), Is.EqualTo((new List<string> { payload }, "")), cut);
        }
    }

    [TestCase("\n")]
    [TestCase("\r\n")]
    public void A_payload_one_byte_over_the_maximum_raises_FrameTooLargeException_at_every_cut(string delimiter)
    {
        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(Bytes(new string('x', Limit + 1) + delimiter)))
        {
            var error = Assert.Throws<FrameTooLargeException>(() => Read(Framer([delimiter], Limit), sequence), cut);
            Assert.That(error!.MaximumLength, Is.EqualTo(Limit), cut);
        }
    }

    [TestCase("\n", 1)]
    [TestCase("\r\n", 1)]
    [TestCase("END", 7)]
    [TestCase("END", 100)]
    public void An_undelimited_payload_over_the_maximum_is_refused_before_more_than_the_maximum_plus_the_delimiter_plus_one_read_is_buffered(string delimiter, int readSize)
    {
        var (messages, bufferedAtError, error) = FramerSpecKit.Feed(Framer([delimiter], Limit), Bytes(new string('x', 10 * Limit)), readSize);

        Assert.That(messages, Is.Empty);
        Assert.That(error, Is.TypeOf<FrameTooLargeException>());
        Assert.That(bufferedAtError, Is.LessThanOrEqualTo(Limit + delimiter.Length - 1 + readSize));
    }

    [Test]
    public void Undelimited_bytes_of_the_maximum_plus_a_delimiter_cut_short_wait_for_the_rest_of_the_delimiter()
    {
        var framer = Framer(["END"], Limit);
        var pending = new string('x', Limit) + "EN";

        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes(pending))), Is.EqualTo((new List<string>(), pending)));
        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes(pending + "D"))), Is.EqualTo((new List<string> { new string('x', Limit) }, "")));
    }

    [Test]
    public void Frames_before_an_oversize_one_are_delivered_before_it_raises()
    {
        var framer = Framer(["\n"], Limit);
        var input = new ReadOnlySequence<byte>(Bytes("ok\n" + new string('x', Limit + 1) + "\n"));
        var consumed = input.Start;
        var examined = input.Start;

        Assert.That(framer.TryReadMessage(input, ref consumed, ref examined, out var first), Is.True);
        Assert.That(Text(first.ToArray()), Is.EqualTo("ok"));
        var rest = input.Slice(consumed);
        Assert.Throws<FrameTooLargeException>(() => Read(framer, rest));
    }

    // ---- End of stream --------------------------------------------------------------------------

    [Test]
    public void End_of_stream_in_a_partial_frame_raises_IncompleteFrameException_with_the_bytes_received()
    {
        IMessageFramer<ReadOnlySequence<byte>> framer = Framer(["\r\n"]);
        var (_, remainder) = FramerSpecKit.ReadAll(framer, SegmentedSequence.FromChunks("one\r\ntw", "o\r"));

        var error = Assert.Throws<IncompleteFrameException>(() => framer.TryReadFinalMessage(new ReadOnlySequence<byte>(remainder), out _));

        Assert.That(error!.BytesReceived, Is.EqualTo(4));
        Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
    }

    // ---- Writing --------------------------------------------------------------------------------

    [Test]
    public void WriteMessage_writes_the_content_then_the_first_delimiter()
    {
        var output = new ArrayBufferWriter<byte>();

        Framer(["\r\n", "\n"]).WriteMessage(SegmentedSequence.FromChunks("he", "", "llo"), output);

        Assert.That(Text(output.WrittenSpan.ToArray()), Is.EqualTo("hello\r\n"));
    }

    [TestCase(new[] { "\r\n" }, "a\r\nb")]
    [TestCase(new[] { "\r\n", "\n" }, "a\nb")]
    [TestCase(new[] { "aa" }, "xa")]
    [TestCase(new[] { "\n", "\r\n" }, "x\r")]
    [TestCase(new[] { "END" }, "aENDb")]
    public void Writing_content_that_would_end_its_frame_early_throws_ArgumentException_and_writes_nothing(string[] delimiters, string content)
    {
        var framer = Framer(delimiters);
        foreach (var (sequence, cut) in FramerSpecKit.EveryCut(Bytes(content)))
        {
            var output = new ArrayBufferWriter<byte>();

            Assert.Throws<ArgumentException>(() => framer.WriteMessage(sequence, output), cut);
            Assert.That(output.WrittenCount, Is.Zero, cut);
        }
    }

    [TestCase(new[] { "\r\n" }, "a\r")]
    [TestCase(new[] { "END" }, "xEN")]
    [TestCase(new[] { "ab" }, "xa")]
    public void Content_ending_with_a_delimiter_s_first_bytes_that_the_written_delimiter_does_not_complete_is_written(string[] delimiters, string content)
    {
        var framer = Framer(delimiters);
        var output = new ArrayBufferWriter<byte>();

        framer.WriteMessage(new ReadOnlySequence<byte>(Bytes(content)), output);

        Assert.That(Read(framer, new ReadOnlySequence<byte>(output.WrittenSpan.ToArray())), Is.EqualTo((new List<string> { content }, "")));
    }

    [Test]
    public void Written_messages_read_back_to_the_same_messages()
    {
        string[] messages = ["first", "", "with\rcr", "with\nlf", new string('z', 200), "end\r"];
        var framer = Framer(["\r\n"]);
        var output = new ArrayBufferWriter<byte>();
        foreach (var message in messages)
        {
            framer.WriteMessage(new ReadOnlySequence<byte>(Bytes(message)), output);
        }

        var written = output.WrittenSpan.ToArray();
        Assert.That(Read(framer, new ReadOnlySequence<byte>(written)), Is.EqualTo((messages.ToList(), "")));
        Assert.That(Read(framer, SegmentedSequence.OfSegmentSize(written, 3)), Is.EqualTo((messages.ToList(), "")));
    }

    // ---- Configuration --------------------------------------------------------------------------

    [Test]
    public void Constructor_options_are_exposed_as_properties()
    {
        var framer = new DelimiterFramer("\0"u8, 42, stripDelimiter: false);

        Assert.That(framer.Delimiters.Select(d => d.ToArray()), Is.EqualTo(new[] { new byte[] { 0 } }));
        Assert.That(framer.MaximumPayloadLength, Is.EqualTo(42));
        Assert.That(framer.StripDelimiter, Is.False);
        Assert.That(((IMessageFramer<ReadOnlySequence<byte>>)framer).MaximumFrameLength, Is.EqualTo(43));
        Assert.That(((IMessageFramer<ReadOnlySequence<byte>>)Framer(["\n", "\r\n"], 10)).MaximumFrameLength, Is.EqualTo(12));
    }

    [Test]
    public void The_delimiters_are_copied()
    {
        var delimiter = Bytes("\n");
        var framer = new DelimiterFramer([delimiter]);
        delimiter[0] = (byte)'x';

        Assert.That(Read(framer, new ReadOnlySequence<byte>(Bytes("a\nx"))), Is.EqualTo((new List<string> { "a" }, "x")));
    }

    [Test]
    public void Constructor_rejects_no_delimiter_an_empty_one_and_a_negative_maximum()
    {
        Assert.Throws<ArgumentException>(() => _ = new DelimiterFramer(ReadOnlySpan<byte>.Empty));
        Assert.Throws<ArgumentException>(() => _ = new DelimiterFramer(Array.Empty<byte[]>()));
        Assert.Throws<ArgumentException>(() => _ = new DelimiterFramer([Bytes("\n"), []]));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new DelimiterFramer("\n"u8, -1));
    }

    // ---- Zero copy and allocation ---------------------------------------------------------------

    [Test]
    public void A_frame_read_from_a_single_segment_points_into_the_same_backing_array()
    {
        var backing = Bytes("##abc\r\nde\r\n");
        var (found, _) = FramerDriver.ReadAll(Framer(["\r\n"]), new ReadOnlySequence<byte>(backing.AsMemory(2)), message =>
        {
            Assert.That(MemoryMarshal.TryGetArray(message.First, out var segment), Is.True);
            return (segment.Array, segment.Offset, segment.Count);
        });

        Assert.That(found, Is.EqualTo(new[] { (backing, 2, 3), (backing, 7, 2) }));
    }

    [TestCase(new[] { "\r\n" }, 0)]
    [TestCase(new[] { "\r\n" }, 1000)]
    [TestCase(new[] { "\r\n", "\n" }, 0)]
    [TestCase(new[] { "\r\n", "\n" }, 1000)]
    public void Reading_a_thousand_frames_allocates_nothing(string[] delimiters, int segmentSize)
    {
        var stream = Bytes(string.Concat(Enumerable.Range(0, 1000).Select(i => new string((char)('a' + (i % 26)), i % 100) + "\r\n")));
        var input = segmentSize == 0 ? new ReadOnlySequence<byte>(stream) : SegmentedSequence.OfSegmentSizeWithoutCopying(stream, segmentSize);

        var (_, remainder, allocated) = FramerDriver.CountFrameBytesMeasuringAllocation(Framer(delimiters), input);

        Assert.That(remainder, Is.Zero);
        Assert.That(allocated, Is.Zero);
    }
}
