using System.Buffers;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Framing;

public class Utf8LineFramerTests
{
    private const int SmallLimit = 16;

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static (List<string> Lines, byte[] Remainder) Parse(Utf8LineFramer framer, ReadOnlySequence<byte> input)
    {
        var (messages, remainder) = FramerDriver.ReadAll(framer, input, line => line);
        return (messages, remainder.ToArray());
    }

    private static (List<string> Lines, byte[] Remainder) Parse(Utf8LineFramer framer, byte[] input)
        => Parse(framer, new ReadOnlySequence<byte>(input));

    // ---- Decoding -------------------------------------------------------------------------------

    [Test]
    public void Lines_decode_to_strings_with_terminators_stripped_and_empty_lines_as_empty_strings()
    {
        var (lines, remainder) = Parse(new Utf8LineFramer(), Utf8("alpha\nbeta\r\n\ngamma\r\nrest"));

        Assert.That(lines, Is.EqualTo(new[] { "alpha", "beta", "", "gamma" }));
        Assert.That(remainder, Is.EqualTo(Utf8("rest")));
    }

    [TestCase("héllo wörld")]
    [TestCase("日本語のテキスト")]
    [TestCase("emoji 😀 and 𝄞")]
    [TestCase("mixed: a é € 😀 z")]
    [TestCase("a\rb")]
    public void Multi_byte_utf8_characters_decode_to_the_same_string(string text)
    {
        var (lines, _) = Parse(new Utf8LineFramer(), Utf8(text + "\r\n"));

        Assert.That(lines, Is.EqualTo(new[] { text }));
    }

    [Test]
    public void A_byte_order_mark_at_the_start_of_a_line_is_kept_as_content()
    {
        var (lines, _) = Parse(new Utf8LineFramer(), [0xEF, 0xBB, 0xBF, (byte)'a', (byte)'\n']);

        Assert.That(lines, Is.EqualTo(new[] { "\uFEFFa" }));
    }

    [Test]
    public void Multi_byte_characters_split_across_two_segments_at_every_point_decode_correctly()
    {
        string[] expected = ["x€y😀z", "next é", "日本"];
        var data = Utf8(string.Join("\r\n", expected[..2]) + "\n" + expected[2] + "\n");
        var framer = new Utf8LineFramer();
        for (var split = 0; split <= data.Length; split++)
        {
            var (lines, remainder) = Parse(framer, SegmentedSequence.Split(data, split));

            Assert.That(lines, Is.EqualTo(expected), $"split at {split}");
            Assert.That(remainder, Is.Empty, $"split at {split}");
        }
    }

    [Test]
    public void A_four_byte_character_split_into_three_segments_at_every_pair_of_points_decodes_correctly()
    {
        var data = Utf8("a😀b\n");
        var framer = new Utf8LineFramer();
        for (var first = 0; first <= data.Length; first++)
        {
            for (var second = first; second <= data.Length; second++)
            {
                var (lines, _) = Parse(framer, SegmentedSequence.Split(data, first, second));

                Assert.That(lines, Is.EqualTo(new[] { "a😀b" }), $"split at {first} and {second}");
            }
        }
    }

    [Test]
    public void Multi_byte_characters_in_one_byte_segments_decode_correctly()
    {
        string[] expected = ["ü€😀", "", "ß"];
        var data = Utf8(string.Join("\n", expected) + "\n");

        var (lines, _) = Parse(new Utf8LineFramer(), SegmentedSequence.OfSegmentSize(data, 1));

        Assert.That(lines, Is.EqualTo(expected));
    }

    [Test]
    public void Decoded_strings_own_their_data_and_outlive_the_buffer()
    {
        var data = Utf8("keep me\n");
        var (lines, _) = Parse(new Utf8LineFramer(), data);

        data.AsSpan().Fill((byte)'#');

        Assert.That(lines, Is.EqualTo(new[] { "keep me" }));
    }

    // ---- Invalid UTF-8 --------------------------------------------------------------------------

    private static IEnumerable<TestCaseData> InvalidUtf8Lines()
    {
        yield return new TestCaseData((object)new byte[] { (byte)'a', 0xFF, (byte)'b' }).SetArgDisplayNames("0xFF byte");
        yield return new TestCaseData((object)new byte[] { (byte)'a', 0x80, (byte)'b' }).SetArgDisplayNames("lone continuation byte");
        yield return new TestCaseData((object)new byte[] { (byte)'a', 0xC0, 0x80 }).SetArgDisplayNames("overlong NUL");
        yield return new TestCaseData((object)new byte[] { 0xED, 0xA0, 0x80 }).SetArgDisplayNames("encoded surrogate");
        yield return new TestCaseData((object)new byte[] { 0xF4, 0x90, 0x80, 0x80 }).SetArgDisplayNames("above U+10FFFF");
        yield return new TestCaseData((object)new byte[] { (byte)'a', 0xE2, 0x82, (byte)'b' }).SetArgDisplayNames("truncated in the middle");
        yield return new TestCaseData((object)new byte[] { (byte)'a', (byte)'b', 0xE2, 0x82 }).SetArgDisplayNames("truncated by the terminator");
        yield return new TestCaseData((object)new byte[] { 0xF0, 0x9F, 0x98 }).SetArgDisplayNames("truncated four-byte character");
    }

    [TestCaseSource(nameof(InvalidUtf8Lines))]
    public void Invalid_utf8_raises_ProtocolException_instead_of_being_replaced(byte[] line)
    {
        var framer = new Utf8LineFramer();
        var input = new ReadOnlySequence<byte>([.. line, (byte)'\n']);

        var error = Assert.Throws<ProtocolException>(() => FramerDriver.ReadAll(framer, input, s => s));

        Assert.That(error, Is.TypeOf<ProtocolException>());
    }

    [TestCaseSource(nameof(InvalidUtf8Lines))]
    public void Invalid_utf8_split_across_segments_raises_ProtocolException_instead_of_being_replaced(byte[] line)
    {
        var framer = new Utf8LineFramer();
        byte[] data = [.. line, (byte)'\r', (byte)'\n'];
        var inputs = Enumerable.Range(0, data.Length + 1).Select(split => SegmentedSequence.Split(data, split))
            .Append(SegmentedSequence.OfSegmentSize(data, 1));
        foreach (var input in inputs)
        {
            var error = Assert.Throws<ProtocolException>(() => FramerDriver.ReadAll(framer, input, s => s));

            Assert.That(error, Is.TypeOf<ProtocolException>());
        }
    }

    [Test]
    public void Lines_before_an_invalid_line_are_delivered_before_it_raises()
    {
        var framer = new Utf8LineFramer();
        var input = new ReadOnlySequence<byte>([.. Utf8("ok é\n"), 0xFF, (byte)'\n']);
        var consumed = input.Start;
        var examined = input.Start;

        Assert.That(framer.TryReadMessage(input, ref consumed, ref examined, out var first), Is.True);
        Assert.That(first, Is.EqualTo("ok é"));

        var rest = input.Slice(consumed);
        Assert.Throws<ProtocolException>(() => FramerDriver.ReadAll(framer, rest, s => s));
    }

    // ---- Maximum line length --------------------------------------------------------------------

    [Test]
    public void The_maximum_line_length_counts_bytes_not_characters()
    {
        var framer = new Utf8LineFramer(SmallLimit);
        var fits = new string('é', SmallLimit / 2);
        var tooLong = new string('é', (SmallLimit / 2) + 1);

        var (lines, _) = Parse(framer, Utf8(fits + "\r\n"));
        Assert.That(lines, Is.EqualTo(new[] { fits }));

        var input = new ReadOnlySequence<byte>(Utf8(tooLong + "\n"));
        var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, s => s));
        Assert.That(error!.MaximumLength, Is.EqualTo(SmallLimit));
        Assert.That(error.ObservedLength, Is.EqualTo(SmallLimit + 2));
    }

    [Test]
    public void Oversize_unterminated_invalid_utf8_raises_FrameTooLargeException_without_decoding()
    {
        var framer = new Utf8LineFramer(SmallLimit);
        var input = SegmentedSequence.OfSegmentSize(Enumerable.Repeat((byte)0xFF, SmallLimit + 1).ToArray(), 4);

        var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, s => s));

        Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 1));
    }

    // ---- End of stream --------------------------------------------------------------------------

    [Test]
    public void End_of_stream_in_a_partial_line_raises_IncompleteFrameException_counting_bytes()
    {
        var framer = new Utf8LineFramer();
        var remainder = SegmentedSequence.FromChunks("日", "本");

        var error = Assert.Throws<IncompleteFrameException>(() => framer.TryReadFinalMessage(remainder, out _));

        Assert.That(error!.BytesReceived, Is.EqualTo(6));
        Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
    }

    [TestCase("日本")]
    [TestCase("日本\r")]
    public void With_acceptUnterminatedLastLine_the_partial_last_line_is_decoded_with_a_trailing_cr_stripped(string partial)
    {
        var framer = new Utf8LineFramer(acceptUnterminatedLastLine: true);
        var data = Utf8(partial);
        for (var split = 0; split <= data.Length; split++)
        {
            Assert.That(framer.TryReadFinalMessage(SegmentedSequence.Split(data, split), out var message), Is.True);
            Assert.That(message, Is.EqualTo("日本"), $"split at {split}");
        }
    }

    [Test]
    public void With_acceptUnterminatedLastLine_an_invalid_utf8_last_line_raises_ProtocolException()
    {
        var framer = new Utf8LineFramer(acceptUnterminatedLastLine: true);
        var remainder = new ReadOnlySequence<byte>([(byte)'a', 0xE2, 0x82]);

        Assert.Throws<ProtocolException>(() => framer.TryReadFinalMessage(remainder, out _));
    }

    [Test]
    public void With_acceptUnterminatedLastLine_the_final_line_is_subject_to_the_maximum_length()
    {
        var framer = new Utf8LineFramer(SmallLimit, acceptUnterminatedLastLine: true);
        var fits = new ReadOnlySequence<byte>(Utf8(new string('x', SmallLimit) + "\r"));
        var tooLong = new ReadOnlySequence<byte>(Utf8(new string('x', SmallLimit + 1)));

        Assert.That(framer.TryReadFinalMessage(fits, out var message), Is.True);
        Assert.That(message, Is.EqualTo(new string('x', SmallLimit)));
        var error = Assert.Throws<FrameTooLargeException>(() => framer.TryReadFinalMessage(tooLong, out _));
        Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 1));
    }

    // ---- Writing --------------------------------------------------------------------------------

    [TestCase(false, "héllo 😀", "héllo 😀\n")]
    [TestCase(true, "héllo 😀", "héllo 😀\r\n")]
    [TestCase(false, "", "\n")]
    [TestCase(true, "", "\r\n")]
    public void WriteMessage_writes_utf8_content_followed_by_lf_or_by_crlf_with_writeCrLf(bool writeCrLf, string message, string expected)
    {
        var framer = new Utf8LineFramer(writeCrLf: writeCrLf);
        var output = new ArrayBufferWriter<byte>();

        framer.WriteMessage(message, output);

        Assert.That(output.WrittenSpan.ToArray(), Is.EqualTo(Utf8(expected)));
    }

    [Test]
    public void WriteMessage_does_not_emit_a_byte_order_mark()
    {
        var output = new ArrayBufferWriter<byte>();

        new Utf8LineFramer().WriteMessage("a", output);

        Assert.That(output.WrittenSpan.ToArray(), Is.EqualTo(new[] { (byte)'a', (byte)'\n' }));
    }

    [TestCase("a\nb")]
    [TestCase("\n")]
    [TestCase("trailing\n")]
    [TestCase("crlf\r\n")]
    public void Writing_a_message_containing_a_line_feed_throws_ArgumentException_and_writes_nothing(string message)
    {
        var framer = new Utf8LineFramer();
        var output = new ArrayBufferWriter<byte>();

        Assert.Throws<ArgumentException>(() => framer.WriteMessage(message, output));

        Assert.That(output.WrittenCount, Is.Zero);
    }

    [Test]
    public void Writing_a_null_message_throws_ArgumentNullException()
    {
        var framer = new Utf8LineFramer();
        var output = new ArrayBufferWriter<byte>();

        Assert.Throws<ArgumentNullException>(() => framer.WriteMessage(null!, output));

        Assert.That(output.WrittenCount, Is.Zero);
    }

    // Built in code: an unpaired surrogate cannot be passed through an attribute argument, whose
    // strings are stored as UTF-8 in metadata (it would arrive as U+FFFD).
    private static IEnumerable<TestCaseData> MessagesWithUnpairedSurrogates()
    {
        yield return new TestCaseData(new string('\uD800', 1)).SetArgDisplayNames("lone high surrogate");
        yield return new TestCaseData("a" + '\uDC00' + "b").SetArgDisplayNames("lone low surrogate");
        yield return new TestCaseData("ok" + '\uDE00' + '\uD83D').SetArgDisplayNames("surrogates in the wrong order");
    }

    [TestCaseSource(nameof(MessagesWithUnpairedSurrogates))]
    public void Writing_a_message_with_an_unpaired_surrogate_throws_instead_of_writing_a_replacement(string message)
    {
        Assert.That(message.Any(char.IsSurrogate), Is.True, "test data must hold the surrogate itself");
        var framer = new Utf8LineFramer();
        var output = new ArrayBufferWriter<byte>();

        Assert.Throws(Is.InstanceOf<ArgumentException>(), () => framer.WriteMessage(message, output));

        Assert.That(output.WrittenCount, Is.Zero);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Written_messages_parse_back_to_the_same_messages(bool writeCrLf)
    {
        string[] messages = ["first", "", "héllo wörld", "日本語", "emoji 😀", "with\rcr", "{\"return\": {}}", new string('€', 100)];
        var framer = new Utf8LineFramer(writeCrLf: writeCrLf);
        var output = new ArrayBufferWriter<byte>();
        foreach (var message in messages)
        {
            framer.WriteMessage(message, output);
        }

        var written = output.WrittenSpan.ToArray();
        var (single, singleRest) = Parse(framer, written);
        var (segmented, segmentedRest) = Parse(framer, SegmentedSequence.OfSegmentSize(written, 1));

        Assert.That(single, Is.EqualTo(messages));
        Assert.That(singleRest, Is.Empty);
        Assert.That(segmented, Is.EqualTo(messages));
        Assert.That(segmentedRest, Is.Empty);
    }

    // ---- Configuration --------------------------------------------------------------------------

    [TestCase(1)]
    [TestCase(SmallLimit)]
    [TestCase(Utf8LineFramer.DefaultMaximumLineLength)]
    [TestCase(int.MaxValue)]
    public void MaximumFrameLength_is_MaximumLineLength_plus_two_for_a_crlf(int maximumLineLength)
    {
        IMessageFramer<string> framer = new Utf8LineFramer(maximumLineLength);

        Assert.That(framer.MaximumFrameLength, Is.EqualTo(maximumLineLength + 2L));
    }

    [TestCase(0)]
    [TestCase(-1)]
    [TestCase(int.MinValue)]
    public void Constructor_rejects_a_maximum_line_length_below_one(int maximumLineLength)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new Utf8LineFramer(maximumLineLength));
    }
}
