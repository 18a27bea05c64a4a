using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Framing;

public class LineFramerTests
{
    private const int SmallLimit = 16;

    private const string SimpleInput = "alpha\nbeta\r\n\ngamma\r\n";

    private static readonly string[] SimpleLines = ["alpha", "beta", "", "gamma"];

    // LF and CRLF, runs of empty lines of both kinds, a lone CR inside a line, a doubled CR before
    // the LF (only the last is a terminator), blanks kept, and an unterminated tail ending in CR.
    private const string MixedInput = "one\r\n\r\n\ntwo\rthree\n  spaced line  \r\n\r\r\nx\n\n{\"k\":\"v\"}\r\nlast-unterminated\r";

    private static readonly string[] MixedLines = ["one", "", "", "two\rthree", "  spaced line  ", "\r", "x", "", "{\"k\":\"v\"}"];

    private const string MixedRemainder = "last-unterminated\r";

    private static IEnumerable<TestCaseData> MultiLineInputs()
    {
        yield return new TestCaseData(SimpleInput, SimpleLines, "").SetArgDisplayNames("simple");
        yield return new TestCaseData(MixedInput, MixedLines, MixedRemainder).SetArgDisplayNames("mixed");
    }

    // Inputs are ASCII / raw bytes: Latin-1 maps each byte to the char of the same value and back.
    private static byte[] Bytes(string text) => Encoding.Latin1.GetBytes(text);

    private static string Text(ReadOnlySequence<byte> bytes) => Encoding.Latin1.GetString(bytes);

    private static (List<string> Lines, string Remainder) Parse(LineFramer framer, ReadOnlySequence<byte> input)
    {
        var (messages, remainder) = FramerDriver.ReadAll(framer, input, Text);
        return (messages, Text(remainder));
    }

    private static (List<string> Lines, string Remainder) Parse(LineFramer framer, string input)
        => Parse(framer, new ReadOnlySequence<byte>(Bytes(input)));

    // ---- Splitting and segmentation -------------------------------------------------------------

    [TestCaseSource(nameof(MultiLineInputs))]
    public void Single_segment_input_yields_each_line_with_its_terminator_stripped_and_empty_lines_as_empty_messages(
        string input, string[] expectedLines, string expectedRemainder)
    {
        var (lines, remainder) = Parse(new LineFramer(), input);

        Assert.That(lines, Is.EqualTo(expectedLines));
        Assert.That(remainder, Is.EqualTo(expectedRemainder));
    }

    [TestCase("a", "\r", "\nnext\n", TestName = "A_CRLF_split_after_its_CR_in_input_that_starts_at_the_very_end_of_a_segment_is_an_empty_line_not_an_IndexOutOfRangeException")]
    [TestCase("a", "b\r", "\nnext\n", TestName = "A_line_ending_in_a_CR_at_a_segment_end_in_input_that_starts_at_the_very_end_of_a_segment_loses_only_its_CR")]
    public void Input_that_starts_at_the_end_of_a_segment_is_read_past_the_empty_first_span(string consumedSegment, string secondSegment, string thirdSegment)
    {
        // What a pipe may hand out: the first segment fully consumed but still the buffer's start,
        // so its first span is empty.
        var sequence = SegmentedSequence.FromChunks(Bytes(consumedSegment), Bytes(secondSegment), Bytes(thirdSegment));
        var input = sequence.Slice(new SequencePosition(sequence.Start.GetObject(), consumedSegment.Length));
        Assert.That(input.FirstSpan.IsEmpty, Is.True, "the setup: an empty first span");

        var (lines, remainder) = Parse(new LineFramer(), input);

        Assert.That(lines, Is.EqualTo(new[] { secondSegment.TrimEnd('\r'), "next" }));
        Assert.That(remainder, Is.Empty);
    }

    [Test]
    public void A_CRLF_whose_CR_ended_a_segment_the_previous_call_examined_is_stripped_when_the_search_resumes_at_the_next_segment()
    {
        // What the read loop does: the first call sees "ab" + "\r" (no LF), returns false with
        // examined at the end; the next read adds "\nc\n" and the search resumes there.
        var framer = new LineFramer();
        var whole = SegmentedSequence.FromChunks("ab", "\r", "\nc\n");
        var firstRead = whole.Slice(0, 3);
        var consumed = firstRead.Start;
        var examined = firstRead.Start;
        Assert.That(framer.TryReadMessage(firstRead, ref consumed, ref examined, out _), Is.False);

        var secondRead = whole;
        consumed = secondRead.Start;
        Assert.That(framer.TryReadMessage(secondRead, ref consumed, ref examined, out var line), Is.True);

        Assert.That(Text(line), Is.EqualTo("ab"));
        Assert.That(Text(secondRead.Slice(consumed)), Is.EqualTo("c\n"));
    }

    [Test]
    public void A_CRLF_with_an_empty_segment_between_its_CR_and_its_LF_is_stripped()
    {
        var (lines, remainder) = Parse(new LineFramer(), SegmentedSequence.FromChunks("a\r", "", "\nb\n"));

        Assert.That(lines, Is.EqualTo(new[] { "a", "b" }));
        Assert.That(remainder, Is.Empty);
    }

    [TestCaseSource(nameof(MultiLineInputs))]
    public void Every_two_way_split_of_the_input_yields_the_same_lines_as_the_single_segment_input(
        string input, string[] expectedLines, string expectedRemainder)
    {
        var framer = new LineFramer();
        var data = Bytes(input);
        for (var split = 0; split <= data.Length; split++)
        {
            var sequence = SegmentedSequence.Split(data, split);
            Assert.That(SegmentedSequence.SegmentCount(sequence), Is.EqualTo(2));

            var (lines, remainder) = Parse(framer, sequence);

            Assert.That(lines, Is.EqualTo(expectedLines), $"split at {split}");
            Assert.That(remainder, Is.EqualTo(expectedRemainder), $"split at {split}");
        }
    }

    [TestCaseSource(nameof(MultiLineInputs))]
    public void Every_three_way_split_of_the_input_yields_the_same_lines_as_the_single_segment_input(
        string input, string[] expectedLines, string expectedRemainder)
    {
        var framer = new LineFramer();
        var data = Bytes(input);
        for (var first = 0; first <= data.Length; first++)
        {
            for (var second = first; second <= data.Length; second++)
            {
                var sequence = SegmentedSequence.Split(data, first, second);

                var (lines, remainder) = Parse(framer, sequence);

                Assert.That(lines, Is.EqualTo(expectedLines), $"split at {first} and {second}");
                Assert.That(remainder, Is.EqualTo(expectedRemainder), $"split at {first} and {second}");
            }
        }
    }

    [TestCaseSource(nameof(MultiLineInputs))]
    public void Input_in_one_byte_segments_yields_the_same_lines_as_the_single_segment_input(
        string input, string[] expectedLines, string expectedRemainder)
    {
        var sequence = SegmentedSequence.OfSegmentSize(Bytes(input), 1);

        var (lines, remainder) = Parse(new LineFramer(), sequence);

        Assert.That(lines, Is.EqualTo(expectedLines));
        Assert.That(remainder, Is.EqualTo(expectedRemainder));
    }

    [TestCase(1)]
    [TestCase(3)]
    [TestCase(7)]
    [TestCase(64)]
    public void A_long_line_straddling_many_segments_is_returned_whole(int segmentSize)
    {
        var longLine = string.Concat(Enumerable.Range(0, 300).Select(i => (char)('a' + (i % 26))));
        var input = $"short\n{longLine}\r\nafter\n";
        var sequence = SegmentedSequence.OfSegmentSize(Bytes(input), segmentSize);

        var (lines, remainder) = Parse(new LineFramer(), sequence);

        Assert.That(lines, Is.EqualTo(new[] { "short", longLine, "after" }));
        Assert.That(remainder, Is.Empty);
    }

    [Test]
    public void A_line_straddling_segments_is_returned_as_slices_of_those_segments_without_copying()
    {
        var sequence = SegmentedSequence.FromChunks("ab", "cd", "e\nrest");
        var segmentArrays = new List<byte[]>();
        foreach (var segment in sequence)
        {
            Assert.That(MemoryMarshal.TryGetArray(segment, out var array), Is.True);
            segmentArrays.Add(array.Array!);
        }

        var consumed = sequence.Start;
        var examined = sequence.Start;
        Assert.That(new LineFramer().TryReadMessage(sequence, ref consumed, ref examined, out var message), Is.True);

        Assert.That(Text(message), Is.EqualTo("abcde"));
        var messageArrays = new List<byte[]>();
        foreach (var segment in message)
        {
            Assert.That(MemoryMarshal.TryGetArray(segment, out var array), Is.True);
            messageArrays.Add(array.Array!);
        }

        Assert.That(messageArrays, Has.Count.EqualTo(3));
        for (var i = 0; i < 3; i++)
        {
            Assert.That(messageArrays[i], Is.SameAs(segmentArrays[i]), $"segment {i}");
        }
    }

    [Test]
    public void An_empty_buffer_yields_no_message()
    {
        var (lines, remainder) = Parse(new LineFramer(), ReadOnlySequence<byte>.Empty);

        Assert.That(lines, Is.Empty);
        Assert.That(remainder, Is.Empty);
    }

    // ---- Terminators ----------------------------------------------------------------------------

    [TestCase("abc\n")]
    [TestCase("abc\r\n")]
    public void Lf_and_CrLf_both_end_a_line_and_the_terminator_is_not_part_of_the_message(string input)
    {
        var (lines, remainder) = Parse(new LineFramer(), input);

        Assert.That(lines, Is.EqualTo(new[] { "abc" }));
        Assert.That(remainder, Is.Empty);
    }

    [TestCase("\n")]
    [TestCase("\r\n")]
    public void An_empty_line_yields_an_empty_message(string input)
    {
        var (lines, _) = Parse(new LineFramer(), input);

        Assert.That(lines, Is.EqualTo(new[] { "" }));
    }

    [Test]
    public void Consumed_is_just_past_the_lf_and_examined_does_not_go_beyond_it()
    {
        var input = new ReadOnlySequence<byte>(Bytes("ab\r\ncd\n"));
        var consumed = input.Start;
        var examined = input.Start;

        Assert.That(new LineFramer().TryReadMessage(input, ref consumed, ref examined, out var message), Is.True);

        Assert.That(Text(message), Is.EqualTo("ab"));
        Assert.That(input.Slice(input.Start, consumed).Length, Is.EqualTo(4));
        Assert.That(input.Slice(input.Start, examined).Length, Is.EqualTo(4));
    }

    [TestCase("a\rb\n", "a\rb")]
    [TestCase("\rab\n", "\rab")]
    [TestCase("a\r\rb\r\n", "a\r\rb")]
    public void A_lone_cr_inside_a_line_is_kept_as_content(string input, string expected)
    {
        var framer = new LineFramer();
        var data = Bytes(input);
        for (var split = 0; split <= data.Length; split++)
        {
            var (lines, _) = Parse(framer, SegmentedSequence.Split(data, split));

            Assert.That(lines, Is.EqualTo(new[] { expected }), $"split at {split}");
        }
    }

    [Test]
    public void Only_the_one_cr_just_before_the_lf_is_stripped()
    {
        var (lines, _) = Parse(new LineFramer(), "abc\r\r\n");

        Assert.That(lines, Is.EqualTo(new[] { "abc\r" }));
    }

    [TestCase("\n", "abc")]
    [TestCase("def\n", "abc\rdef")]
    [TestCase("\r\n", "abc\r")]
    public void A_cr_as_the_last_buffered_byte_yields_no_message_until_the_following_bytes_decide_its_meaning(string following, string expected)
    {
        var framer = new LineFramer();

        var (before, pending) = Parse(framer, "abc\r");
        Assert.That(before, Is.Empty);
        Assert.That(pending, Is.EqualTo("abc\r"));

        // The CR alone in the last segment, then with the rest arriving as a new segment.
        var (alone, pendingAlone) = Parse(framer, SegmentedSequence.FromChunks("abc", "\r"));
        Assert.That(alone, Is.Empty);
        Assert.That(pendingAlone, Is.EqualTo("abc\r"));

        var (after, _) = Parse(framer, SegmentedSequence.FromChunks("abc", "\r", following));
        Assert.That(after, Is.EqualTo(new[] { expected }));

        var (single, _) = Parse(framer, "abc\r" + following);
        Assert.That(single, Is.EqualTo(new[] { expected }));
    }

    // ---- Incremental arrival --------------------------------------------------------------------

    [TestCase(false)]
    [TestCase(true)]
    public void Bytes_arriving_one_at_a_time_yield_each_line_only_once_its_lf_has_arrived(bool oneSegmentPerByte)
    {
        var data = Bytes(SimpleInput + "tail\r");
        var framer = new LineFramer();
        var received = new List<string>();
        var consumedOffset = 0;
        for (var arrived = 1; arrived <= data.Length; arrived++)
        {
            var pending = data[consumedOffset..arrived];
            var buffer = oneSegmentPerByte ? SegmentedSequence.OfSegmentSize(pending, 1) : new ReadOnlySequence<byte>(pending);

            var (messages, remainder) = FramerDriver.ReadAll(framer, buffer, Text);

            received.AddRange(messages);
            consumedOffset += (int)(buffer.Length - remainder.Length);
            var lineFeedsSoFar = data.AsSpan(0, arrived).Count((byte)'\n');
            Assert.That(received, Has.Count.EqualTo(lineFeedsSoFar), $"after {arrived} bytes");
            Assert.That(messages, Has.Count.EqualTo(data[arrived - 1] == '\n' ? 1 : 0), $"after {arrived} bytes");
        }

        Assert.That(received, Is.EqualTo(SimpleLines));
        Assert.That(data[consumedOffset..], Is.EqualTo(Bytes("tail\r")));
    }

    // ---- Resuming an incomplete line (the examined position carried from read to read) -----------

    [Test]
    public void Bytes_before_the_examined_position_handed_in_count_as_searched_in_vain_and_are_not_searched_again()
    {
        // The contract lets the framer trust an examined position from an earlier call on the same
        // bytes; a position past a line feed proves the framer resumes there instead of rescanning
        // (past the first segment, which is always searched: at most one segment per read).
        var input = SegmentedSequence.FromChunks("ab", "c\nd", "e\nf");
        var consumed = input.Start;
        var examined = input.GetPosition(5);

        Assert.That(new LineFramer().TryReadMessage(input, ref consumed, ref examined, out var line), Is.True);
        Assert.That(Text(line), Is.EqualTo("abc\nde"));
        Assert.That(input.Slice(consumed).Length, Is.EqualTo(1), "consumed just past the line feed that was searched for");
    }

    [Test]
    public void An_examined_position_at_the_start_of_the_input_searches_it_all()
    {
        var input = SegmentedSequence.FromChunks("ab", "c\nd");
        var consumed = input.Start;
        var examined = input.Start;

        Assert.That(new LineFramer().TryReadMessage(input, ref consumed, ref examined, out var line), Is.True);
        Assert.That(Text(line), Is.EqualTo("abc"));
    }

    [TestCase(1)]
    [TestCase(3)]
    [TestCase(16)]
    public void Through_a_pipe_in_random_writes_with_examined_carried_from_read_to_read_every_line_arrives_whole(int segmentSize)
    {
        // Long lines over many reads, CRLF split between reads, lone CRs, empty lines: the same
        // lines whether the framer resumes its search or starts over on every read.
        var text = string.Concat(Enumerable.Range(0, 40).Select(i => new string((char)('a' + (i % 26)), i * 37 % 300) + (i % 3 == 0 ? "\r\n" : i % 3 == 1 ? "\n" : "\rx\n")));
        var data = Bytes(text);
        var expected = text.Split('\n')[..^1].Select(l => l.EndsWith('\r') ? l[..^1] : l).ToList();
        for (var seed = 0; seed < 20; seed++)
        {
            Assert.That(FramerDriver.ReadThroughPipe(new LineFramer(maximumLineLength: 1024), data, segmentSize, new Random(seed), carryExamined: true, Text), Is.EqualTo(expected), $"seed {seed}, carried");
            Assert.That(FramerDriver.ReadThroughPipe(new LineFramer(maximumLineLength: 1024), data, segmentSize, new Random(seed), carryExamined: false, Text), Is.EqualTo(expected), $"seed {seed}, not carried");
        }
    }

    // ---- Maximum line length --------------------------------------------------------------------

    [TestCase("\n")]
    [TestCase("\r\n")]
    public void A_line_of_exactly_the_maximum_length_is_accepted(string terminator)
    {
        var line = new string('x', SmallLimit);

        var (lines, remainder) = Parse(new LineFramer(SmallLimit), line + terminator);

        Assert.That(lines, Is.EqualTo(new[] { line }));
        Assert.That(remainder, Is.Empty);
    }

    [TestCase("\n")]
    [TestCase("\r\n")]
    public void A_line_one_byte_over_the_maximum_length_raises_FrameTooLargeException(string terminator)
    {
        var framer = new LineFramer(SmallLimit);
        var input = new ReadOnlySequence<byte>(Bytes(new string('x', SmallLimit + 1) + terminator));

        var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, Text));

        Assert.That(error!.MaximumLength, Is.EqualTo(SmallLimit));
        Assert.That(error.ObservedLength, Is.EqualTo(SmallLimit + 1));
    }

    [TestCase("\n")]
    [TestCase("\r\n")]
    public void A_line_over_the_maximum_length_raises_FrameTooLargeException_at_every_split_point(string terminator)
    {
        var framer = new LineFramer(SmallLimit);
        var data = Bytes(new string('x', SmallLimit + 1) + terminator);
        for (var split = 0; split <= data.Length; split++)
        {
            var input = SegmentedSequence.Split(data, split);

            var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, Text), $"split at {split}");

            Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 1), $"split at {split}");
        }
    }

    [Test]
    public void Oversize_line_without_terminator_raises_FrameTooLargeException_once_limit_is_exceeded()
    {
        var framer = new LineFramer(SmallLimit);
        var input = new ReadOnlySequence<byte>(Bytes(new string('x', SmallLimit + 1)));

        var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, Text));

        Assert.That(error!.MaximumLength, Is.EqualTo(SmallLimit));
        Assert.That(error.ObservedLength, Is.EqualTo(SmallLimit + 1));
    }

    [Test]
    public void Oversize_line_without_terminator_raises_FrameTooLargeException_in_multi_segment_input()
    {
        var framer = new LineFramer(SmallLimit);
        var data = Bytes(new string('x', SmallLimit + 1));
        var inputs = Enumerable.Range(0, data.Length + 1).Select(split => SegmentedSequence.Split(data, split))
            .Append(SegmentedSequence.OfSegmentSize(data, 1))
            .Append(SegmentedSequence.OfSegmentSize(data, 5));
        foreach (var input in inputs)
        {
            var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, Text));

            Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 1));
        }
    }

    [Test]
    public void Unterminated_data_of_exactly_the_maximum_length_waits_for_more_bytes()
    {
        var (lines, remainder) = Parse(new LineFramer(SmallLimit), new string('x', SmallLimit));

        Assert.That(lines, Is.Empty);
        Assert.That(remainder, Has.Length.EqualTo(SmallLimit));
    }

    [Test]
    public void Unterminated_data_of_the_maximum_length_plus_a_trailing_cr_waits_for_the_lf()
    {
        var framer = new LineFramer(SmallLimit);
        var data = Bytes(new string('x', SmallLimit) + "\r");
        var inputs = Enumerable.Range(0, data.Length + 1).Select(split => SegmentedSequence.Split(data, split))
            .Append(new ReadOnlySequence<byte>(data))
            .Append(SegmentedSequence.OfSegmentSize(data, 1));
        foreach (var input in inputs)
        {
            var (lines, remainder) = Parse(framer, input);

            Assert.That(lines, Is.Empty);
            Assert.That(remainder, Is.EqualTo(new string('x', SmallLimit) + "\r"));
        }

        var (completed, _) = Parse(framer, SegmentedSequence.FromChunks(data, Bytes("\n")));
        Assert.That(completed, Is.EqualTo(new[] { new string('x', SmallLimit) }));
    }

    [Test]
    public void Unterminated_data_of_the_maximum_length_plus_a_cr_raises_once_a_byte_other_than_lf_follows()
    {
        var framer = new LineFramer(SmallLimit);
        var input = SegmentedSequence.FromChunks(new string('x', SmallLimit) + "\r", "y");

        var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, Text));

        Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 2));
    }

    // With SmallLimit = 16: a CR that is not the last byte cannot be the CR of a CRLF, and a
    // trailing CR only excuses one byte over the limit.
    [TestCase(SmallLimit - 1, "\rx", SmallLimit + 1)]
    [TestCase(SmallLimit + 1, "\r", SmallLimit + 2)]
    [TestCase(SmallLimit, "\r\r", SmallLimit + 2)]
    [TestCase(SmallLimit + 50, "", SmallLimit + 50)]
    public void Unterminated_data_over_the_maximum_length_raises_unless_it_is_the_limit_plus_a_trailing_cr(int length, string tail, int observed)
    {
        var framer = new LineFramer(SmallLimit);
        var data = Bytes(new string('x', length) + tail);
        foreach (var input in new[] { new ReadOnlySequence<byte>(data), SegmentedSequence.OfSegmentSize(data, 1) })
        {
            var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, Text));

            Assert.That(error!.ObservedLength, Is.EqualTo(observed));
        }
    }

    [Test]
    public void Oversize_line_arriving_byte_by_byte_raises_as_soon_as_the_limit_is_exceeded_without_waiting_for_a_terminator()
    {
        var framer = new LineFramer(SmallLimit);
        var data = Bytes(new string('x', SmallLimit + 10) + "\n");
        for (var arrived = 1; arrived <= SmallLimit; arrived++)
        {
            var (lines, _) = Parse(framer, SegmentedSequence.OfSegmentSize(data[..arrived], 1));
            Assert.That(lines, Is.Empty, $"after {arrived} bytes");
        }

        var overflow = SegmentedSequence.OfSegmentSize(data[..(SmallLimit + 1)], 1);
        var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, overflow, Text));

        Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 1));
    }

    [Test]
    public void The_limit_applies_to_each_line_not_to_the_buffered_bytes()
    {
        var line = new string('x', SmallLimit);
        var input = string.Concat(Enumerable.Repeat(line + "\n", 10)) + new string('y', SmallLimit);

        var (lines, remainder) = Parse(new LineFramer(SmallLimit), input);

        Assert.That(lines, Is.EqualTo(Enumerable.Repeat(line, 10)));
        Assert.That(remainder, Is.EqualTo(new string('y', SmallLimit)));
    }

    [Test]
    public void Lines_before_an_oversize_line_are_delivered_before_it_raises()
    {
        var framer = new LineFramer(SmallLimit);
        var input = new ReadOnlySequence<byte>(Bytes("ok\n\n" + new string('x', SmallLimit + 1) + "\nnever\n"));
        var buffer = input;
        var consumed = buffer.Start;
        var examined = buffer.Start;

        Assert.That(framer.TryReadMessage(buffer, ref consumed, ref examined, out var first), Is.True);
        Assert.That(Text(first), Is.EqualTo("ok"));
        buffer = buffer.Slice(consumed);
        Assert.That(framer.TryReadMessage(buffer, ref consumed, ref examined, out var second), Is.True);
        Assert.That(Text(second), Is.Empty);
        buffer = buffer.Slice(consumed);

        var rest = buffer;
        Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, rest, Text));
    }

    [Test]
    public void A_maximum_line_length_of_one_accepts_one_byte_and_empty_lines_only()
    {
        var framer = new LineFramer(1);

        var (lines, _) = Parse(framer, "a\n\nb\r\n");
        Assert.That(lines, Is.EqualTo(new[] { "a", "", "b" }));

        var tooLong = new ReadOnlySequence<byte>(Bytes("ab\n"));
        Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, tooLong, Text));
    }

    [Test]
    public void A_framer_keeps_no_state_between_inputs_so_it_parses_normally_after_raising()
    {
        var framer = new LineFramer(SmallLimit);
        var oversize = new ReadOnlySequence<byte>(Bytes(new string('x', SmallLimit + 1)));
        Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, oversize, Text));

        var (lines, _) = Parse(framer, "fine\n");

        Assert.That(lines, Is.EqualTo(new[] { "fine" }));
    }

    // ---- End of stream --------------------------------------------------------------------------

    [Test]
    public void End_of_stream_in_a_partial_line_raises_IncompleteFrameException_with_the_bytes_received()
    {
        var framer = new LineFramer();
        var (lines, remainder) = FramerDriver.ReadAll(framer, new ReadOnlySequence<byte>(Bytes("one\ntwo")), Text);
        Assert.That(lines, Is.EqualTo(new[] { "one" }));

        var error = Assert.Throws<IncompleteFrameException>(() => framer.TryReadFinalMessage(remainder, out _));

        Assert.That(error!.BytesReceived, Is.EqualTo(3));
        Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
        Assert.That(error, Is.InstanceOf<ProtocolException>());
    }

    [Test]
    public void End_of_stream_in_a_partial_multi_segment_line_raises_IncompleteFrameException_with_the_bytes_received()
    {
        var framer = new LineFramer();
        var remainder = SegmentedSequence.FromChunks("par", "tial", "\r");

        var error = Assert.Throws<IncompleteFrameException>(() => framer.TryReadFinalMessage(remainder, out _));

        Assert.That(error!.BytesReceived, Is.EqualTo(8));
        Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
    }

    [TestCase("tail", "tail")]
    [TestCase("tail\r", "tail")]
    [TestCase("ta\ril", "ta\ril")]
    [TestCase("\r", "")]
    public void With_acceptUnterminatedLastLine_the_partial_last_line_is_delivered_with_a_trailing_cr_stripped(string partial, string expected)
    {
        var framer = new LineFramer(acceptUnterminatedLastLine: true);
        var data = Bytes(partial);
        var remainders = Enumerable.Range(0, data.Length + 1).Select(split => SegmentedSequence.Split(data, split))
            .Append(new ReadOnlySequence<byte>(data));
        foreach (var remainder in remainders)
        {
            Assert.That(framer.TryReadFinalMessage(remainder, out var message), Is.True);
            Assert.That(Text(message), Is.EqualTo(expected));
        }
    }

    [Test]
    public void With_acceptUnterminatedLastLine_the_partial_last_line_after_whole_lines_is_delivered_last()
    {
        var framer = new LineFramer(acceptUnterminatedLastLine: true);
        var (lines, remainder) = FramerDriver.ReadAll(framer, SegmentedSequence.FromChunks("one\r\ntw", "o\nthr", "ee"), Text);

        Assert.That(framer.TryReadFinalMessage(remainder, out var last), Is.True);

        Assert.That(lines.Append(Text(last)), Is.EqualTo(new[] { "one", "two", "three" }));
    }

    [TestCase("", 16, true)]
    [TestCase("\r", 16, true)]
    [TestCase("", 17, false)]
    [TestCase("\r", 17, false)]
    public void With_acceptUnterminatedLastLine_the_final_line_is_subject_to_the_maximum_length(string terminator, int length, bool accepted)
    {
        var framer = new LineFramer(SmallLimit, acceptUnterminatedLastLine: true);
        var remainder = new ReadOnlySequence<byte>(Bytes(new string('x', length) + terminator));

        if (accepted)
        {
            Assert.That(framer.TryReadFinalMessage(remainder, out var message), Is.True);
            Assert.That(message.Length, Is.EqualTo(length));
        }
        else
        {
            var error = Assert.Throws<FrameTooLargeException>(() => framer.TryReadFinalMessage(remainder, out _));
            Assert.That(error!.MaximumLength, Is.EqualTo(SmallLimit));
            Assert.That(error.ObservedLength, Is.EqualTo(length));
        }
    }

    // ---- Writing --------------------------------------------------------------------------------

    [TestCase(false, "hello", "hello\n")]
    [TestCase(true, "hello", "hello\r\n")]
    [TestCase(false, "", "\n")]
    [TestCase(true, "", "\r\n")]
    [TestCase(false, "a\rb", "a\rb\n")]
    public void WriteMessage_writes_the_content_followed_by_lf_or_by_crlf_with_writeCrLf(bool writeCrLf, string content, string expected)
    {
        var framer = new LineFramer(writeCrLf: writeCrLf);
        var output = new ArrayBufferWriter<byte>();

        framer.WriteMessage(new ReadOnlySequence<byte>(Bytes(content)), output);

        Assert.That(Encoding.Latin1.GetString(output.WrittenSpan), Is.EqualTo(expected));
    }

    [Test]
    public void WriteMessage_writes_a_multi_segment_message_contiguously()
    {
        var framer = new LineFramer(writeCrLf: true);
        var output = new ArrayBufferWriter<byte>();

        framer.WriteMessage(SegmentedSequence.FromChunks("he", "", "l", "lo"), output);

        Assert.That(Encoding.Latin1.GetString(output.WrittenSpan), Is.EqualTo("hello\r\n"));
    }

    [Test]
    public void WriteMessage_appends_to_what_the_output_already_holds()
    {
        var framer = new LineFramer();
        var output = new ArrayBufferWriter<byte>();

        framer.WriteMessage(new ReadOnlySequence<byte>(Bytes("one")), output);
        framer.WriteMessage(new ReadOnlySequence<byte>(Bytes("two")), output);

        Assert.That(Encoding.Latin1.GetString(output.WrittenSpan), Is.EqualTo("one\ntwo\n"));
    }

    private static IEnumerable<TestCaseData> MessagesContainingLineFeed()
    {
        yield return new TestCaseData((object)new[] { "a\nb" }).SetArgDisplayNames("single segment");
        yield return new TestCaseData((object)new[] { "\n" }).SetArgDisplayNames("only a line feed");
        yield return new TestCaseData((object)new[] { "ab", "c\nd" }).SetArgDisplayNames("in the last segment");
        yield return new TestCaseData((object)new[] { "a\n", "bc" }).SetArgDisplayNames("in the first segment");
        yield return new TestCaseData((object)new[] { "ab", "\n", "cd" }).SetArgDisplayNames("a middle segment");
    }

    [TestCaseSource(nameof(MessagesContainingLineFeed))]
    public void Writing_a_message_containing_a_line_feed_throws_ArgumentException_and_writes_nothing(string[] chunks)
    {
        var framer = new LineFramer();
        var output = new ArrayBufferWriter<byte>();
        var message = chunks.Length == 1 ? new ReadOnlySequence<byte>(Bytes(chunks[0])) : SegmentedSequence.FromChunks(chunks);

        Assert.Throws<ArgumentException>(() => framer.WriteMessage(message, output));

        Assert.That(output.WrittenCount, Is.Zero);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Written_messages_parse_back_to_the_same_messages(bool writeCrLf)
    {
        string[] messages = ["first", "", "  padded  ", "with\rcr", "{\"execute\":\"query-status\"}", new string('z', 200)];
        var framer = new LineFramer(writeCrLf: writeCrLf);
        var output = new ArrayBufferWriter<byte>();
        foreach (var message in messages)
        {
            framer.WriteMessage(new ReadOnlySequence<byte>(Bytes(message)), output);
        }

        var written = output.WrittenSpan.ToArray();
        var (single, singleRest) = Parse(framer, new ReadOnlySequence<byte>(written));
        var (segmented, segmentedRest) = Parse(framer, SegmentedSequence.OfSegmentSize(written, 3));

        Assert.That(single, Is.EqualTo(messages));
        Assert.That(singleRest, Is.Empty);
        Assert.That(segmented, Is.EqualTo(messages));
        Assert.That(segmentedRest, Is.Empty);
    }

    // ---- Configuration --------------------------------------------------------------------------

    [TestCase(1)]
    [TestCase(SmallLimit)]
    [TestCase(LineFramer.DefaultMaximumLineLength)]
    [TestCase(int.MaxValue)]
    public void MaximumFrameLength_is_MaximumLineLength_plus_two_for_a_crlf(int maximumLineLength)
    {
        IMessageFramer<ReadOnlySequence<byte>> framer = new LineFramer(maximumLineLength);

        Assert.That(framer.MaximumFrameLength, Is.EqualTo(maximumLineLength + 2L));
    }

    [Test]
    public void The_default_maximum_line_length_is_64_KiB()
    {
        var framer = new LineFramer();

        Assert.That(framer.MaximumLineLength, Is.EqualTo(65536));
        Assert.That(LineFramer.DefaultMaximumLineLength, Is.EqualTo(65536));
        Assert.That(framer.WriteCrLf, Is.False);
        Assert.That(framer.AcceptUnterminatedLastLine, Is.False);
    }

    [Test]
    public void Constructor_options_are_exposed_as_properties()
    {
        var framer = new LineFramer(42, writeCrLf: true, acceptUnterminatedLastLine: true);

        Assert.That(framer.MaximumLineLength, Is.EqualTo(42));
        Assert.That(framer.WriteCrLf, Is.True);
        Assert.That(framer.AcceptUnterminatedLastLine, Is.True);
    }

    [TestCase(0)]
    [TestCase(-1)]
    [TestCase(int.MinValue)]
    public void Constructor_rejects_a_maximum_line_length_below_one(int maximumLineLength)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LineFramer(maximumLineLength));
    }

    // ---- Zero copy and allocation ---------------------------------------------------------------

    [Test]
    public void A_line_parsed_from_a_single_segment_input_points_into_the_same_backing_array()
    {
        const int offset = 5;
        var backing = Bytes("#####alpha\r\nbeta\n\ngamma\n");
        var input = new ReadOnlySequence<byte>(backing.AsMemory(offset));
        (string Text, int Start)[] expected = [("alpha", offset), ("beta", offset + 7), ("", offset + 12), ("gamma", offset + 13)];
        var (found, _) = FramerDriver.ReadAll(new LineFramer(), input, message =>
        {
            Assert.That(message.IsSingleSegment, Is.True);
            Assert.That(MemoryMarshal.TryGetArray(message.First, out var segment), Is.True);
            return (Text(message), segment.Array, segment.Offset, segment.Count);
        });

        Assert.That(found, Has.Count.EqualTo(expected.Length));
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.That(found[i].Item1, Is.EqualTo(expected[i].Text));
            Assert.That(found[i].Array, Is.SameAs(backing), $"line {i}");
            Assert.That(found[i].Offset, Is.EqualTo(expected[i].Start), $"line {i}");
            Assert.That(found[i].Count, Is.EqualTo(expected[i].Text.Length), $"line {i}");
        }
    }

    [Test]
    public void Parsing_a_thousand_64_byte_lines_from_one_segment_allocates_nothing()
    {
        const int lineCount = 1000;
        const int lineLength = 64;
        var data = new byte[lineCount * (lineLength + 1)];
        for (var i = 0; i < lineCount; i++)
        {
            data.AsSpan(i * (lineLength + 1), lineLength).Fill((byte)('a' + (i % 26)));
            data[(i * (lineLength + 1)) + lineLength] = (byte)'\n';
        }

        var (frameBytes, remainderLength, allocated) = FramerDriver.CountFrameBytesMeasuringAllocation(new LineFramer(), new ReadOnlySequence<byte>(data));

        Assert.That(frameBytes, Is.EqualTo(lineCount * (long)lineLength));
        Assert.That(remainderLength, Is.Zero);
        Assert.That(allocated, Is.Zero);
    }
}
