using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Testing;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Framing;

public class JsonStreamFramerTests
{
    private const int SmallLimit = 16;

    // Values back to back, on one line, across blank lines; strings holding brackets, escaped
    // quotes and backslashes; nesting; every kind of top-level scalar; and a pending number.
    private const string MixedInput =
        "{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-status\"}\n" +
        "\r\n\t \n[1,[2,{\"k\":[]}]]  \"top\"\"level\"" +
        "{\"s\":\"}{][\\\"}\\\\\"}" +
        "[\"\\\\\",\"\\\"]\"]\n" +
        "42 -0.5e+3{}true\tfalse\nnull[]17";

    private static readonly string[] MixedValues =
    [
        "{\"execute\":\"qmp_capabilities\"}", "{\"execute\":\"query-status\"}",
        "[1,[2,{\"k\":[]}]]", "\"top\"", "\"level\"",
        "{\"s\":\"}{][\\\"}\\\\\"}",
        "[\"\\\\\",\"\\\"]\"]",
        "42", "-0.5e+3", "{}", "true", "false", "null", "[]",
    ];

    private const string MixedRemainder = "17";

    private static byte[] Bytes(string text) => Encoding.Latin1.GetBytes(text);

    private static string Text(ReadOnlySequence<byte> bytes) => Encoding.Latin1.GetString(bytes);

    private static (List<string> Values, string Remainder) Parse(JsonStreamFramer framer, ReadOnlySequence<byte> input)
    {
        var (messages, remainder) = FramerDriver.ReadAll(framer, input, Text);
        return (messages, Text(remainder));
    }

    private static (List<string> Values, string Remainder) Parse(JsonStreamFramer framer, string input)
        => Parse(framer, new ReadOnlySequence<byte>(Bytes(input)));

    // ---- What makes a value ---------------------------------------------------------------------

    [Test]
    public void Values_with_nothing_between_them_are_each_a_frame()
    {
        var (values, remainder) = Parse(new JsonStreamFramer(), "{\"a\":1}{\"b\":2}[3][]\"s\"{}");

        Assert.That(values, Is.EqualTo(new[] { "{\"a\":1}", "{\"b\":2}", "[3]", "[]", "\"s\"", "{}" }));
        Assert.That(remainder, Is.Empty);
    }

    [Test]
    public void A_mixed_stream_yields_each_value_without_the_whitespace_around_it_and_keeps_a_trailing_number_pending()
    {
        var (values, remainder) = Parse(new JsonStreamFramer(), MixedInput);

        Assert.That(values, Is.EqualTo(MixedValues));
        Assert.That(remainder, Is.EqualTo(MixedRemainder));
    }

    [TestCase("{\"a\":\"}\"}", TestName = "A_closing_brace_inside_a_string_does_not_end_the_object")]
    [TestCase("{\"a\":\"{{{\"}", TestName = "Opening_braces_inside_a_string_do_not_deepen_the_object")]
    [TestCase("[\"]\"]", TestName = "A_closing_bracket_inside_a_string_does_not_end_the_array")]
    [TestCase("{\"a\":\"say \\\"}\\\" now\"}", TestName = "An_escaped_quote_does_not_end_the_string_it_is_in")]
    [TestCase("{\"a\":\"\\\\\"}", TestName = "An_escaped_backslash_before_a_quote_leaves_the_quote_closing_the_string")]
    [TestCase("{\"a\":\"\\u007d\\n\"}", TestName = "Other_escapes_are_skipped_as_string_content")]
    [TestCase("[[[{\"a\":[{}]}]],{\"b\":{\"c\":[]}}]", TestName = "Nested_arrays_and_objects_end_at_the_bracket_that_closes_the_first")]
    [TestCase("\"}{\\\"\"", TestName = "A_top_level_string_ends_at_its_closing_quote")]
    public void A_single_value_is_one_frame_however_it_is_split(string value)
    {
        var framer = new JsonStreamFramer();
        var data = Bytes(value + "\n" + value);
        for (var split = 0; split <= data.Length; split++)
        {
            var (values, remainder) = Parse(framer, SegmentedSequence.Split(data, split));

            Assert.That(values, Is.EqualTo(new[] { value, value }), $"split at {split}");
            Assert.That(remainder, Is.Empty, $"split at {split}");
        }
    }

    [TestCase("42 ", "42")]
    [TestCase("-1.5e-3\n", "-1.5e-3")]
    [TestCase("0{", "0")]
    [TestCase("true[1", "true")]
    [TestCase("false\"x", "false")]
    [TestCase("null\t", "null")]
    public void A_top_level_number_or_literal_ends_at_the_first_byte_that_cannot_continue_it_which_starts_the_next_frame(string input, string expected)
    {
        var (values, remainder) = Parse(new JsonStreamFramer(), input);

        Assert.That(values, Is.EqualTo(new[] { expected }));
        Assert.That(remainder, Is.EqualTo(input[expected.Length..]));
    }

    [TestCase("42")]
    [TestCase("tru")]
    [TestCase("true")]
    [TestCase("  -7")]
    public void A_top_level_scalar_at_the_end_of_the_buffer_waits_for_the_byte_after_it(string input)
    {
        var framer = new JsonStreamFramer();

        var (values, remainder) = Parse(framer, input);
        Assert.That(values, Is.Empty);
        Assert.That(remainder, Is.EqualTo(input), "the whitespace before a pending value stays unconsumed");

        var (completed, _) = Parse(framer, SegmentedSequence.FromChunks(input, "\n"));
        Assert.That(completed, Is.EqualTo(new[] { input.TrimStart() }));
    }

    [Test]
    public void A_scalar_is_framed_as_a_run_of_bytes_that_could_continue_it_and_its_grammar_is_left_to_the_decoder()
    {
        var (values, _) = Parse(new JsonStreamFramer(), "12ab.e+-x {\"a\" 1} {\"a\":[1}] ");

        Assert.That(values, Is.EqualTo(new[] { "12ab.e+-x", "{\"a\" 1}", "{\"a\":[1}]" }));
    }

    // ---- Whitespace between values ---------------------------------------------------------------

    [Test]
    public void Whitespace_and_blank_lines_before_a_value_are_consumed_with_it()
    {
        var input = new ReadOnlySequence<byte>(Bytes(" \t\r\n\r\n\n{}\n"));
        var consumed = input.Start;
        var examined = input.Start;

        Assert.That(new JsonStreamFramer().TryReadMessage(input, ref consumed, ref examined, out var value), Is.True);

        Assert.That(Text(value), Is.EqualTo("{}"));
        Assert.That(Text(input.Slice(consumed)), Is.EqualTo("\n"), "consumed is just past the value; examined no further");
        Assert.That(examined, Is.EqualTo(consumed));
    }

    [TestCase("")]
    [TestCase(" ")]
    [TestCase("\r\n\r\n\t  \n")]
    public void Whitespace_alone_yields_no_frame_and_stays_unconsumed(string input)
    {
        var (values, remainder) = Parse(new JsonStreamFramer(), input);

        Assert.That(values, Is.Empty);
        Assert.That(remainder, Is.EqualTo(input));
    }

    // ---- Segmentation ---------------------------------------------------------------------------

    [Test]
    public void Every_two_way_split_of_the_input_yields_the_same_values_as_the_single_segment_input()
    {
        var framer = new JsonStreamFramer();
        var data = Bytes(MixedInput);
        for (var split = 0; split <= data.Length; split++)
        {
            var (values, remainder) = Parse(framer, SegmentedSequence.Split(data, split));

            Assert.That(values, Is.EqualTo(MixedValues), $"split at {split}");
            Assert.That(remainder, Is.EqualTo(MixedRemainder), $"split at {split}");
        }
    }

    [Test]
    public void Every_three_way_split_of_the_input_yields_the_same_values_as_the_single_segment_input()
    {
        var framer = new JsonStreamFramer();
        var data = Bytes(MixedInput);
        for (var first = 0; first <= data.Length; first += 3)
        {
            for (var second = first; second <= data.Length; second++)
            {
                var (values, remainder) = Parse(framer, SegmentedSequence.Split(data, first, second));

                Assert.That(values, Is.EqualTo(MixedValues), $"split at {first} and {second}");
                Assert.That(remainder, Is.EqualTo(MixedRemainder), $"split at {first} and {second}");
            }
        }
    }

    [Test]
    public void Input_in_segments_of_every_size_yields_the_same_values_as_the_single_segment_input()
    {
        var framer = new JsonStreamFramer();
        var data = Bytes(MixedInput);
        for (var size = 1; size <= data.Length; size++)
        {
            var (values, remainder) = Parse(framer, SegmentedSequence.OfSegmentSize(data, size));

            Assert.That(values, Is.EqualTo(MixedValues), $"segments of {size}");
            Assert.That(remainder, Is.EqualTo(MixedRemainder), $"segments of {size}");
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Bytes_arriving_one_at_a_time_yield_each_value_once_its_last_byte_or_the_byte_after_a_scalar_has_arrived(bool carryExamined)
    {
        var data = Bytes(MixedInput);
        var framer = new JsonStreamFramer();
        var received = new List<string>();
        var consumedOffset = 0;
        SequencePosition resume = default;
        for (var arrived = 1; arrived <= data.Length; arrived++)
        {
            // One array per arrival, as a pipe whose first segment keeps growing.
            var buffer = new ReadOnlySequence<byte>(data, consumedOffset, arrived - consumedOffset);
            var consumed = buffer.Start;
            var examined = carryExamined && resume.GetObject() is not null ? resume : buffer.Start;
            while (framer.TryReadMessage(buffer, ref consumed, ref examined, out var value))
            {
                received.Add(Text(value));
                buffer = buffer.Slice(consumed);
            }

            consumedOffset = arrived - (int)buffer.Length;
            resume = buffer.IsEmpty || examined.Equals(consumed) ? default : examined;
        }

        Assert.That(received, Is.EqualTo(MixedValues));
        Assert.That(data[consumedOffset..], Is.EqualTo(Bytes(MixedRemainder)));
    }

    [TestCase(1)]
    [TestCase(3)]
    [TestCase(16)]
    public void Through_a_pipe_in_random_writes_every_value_arrives_whole_whether_examined_is_carried_or_not(int segmentSize)
    {
        var values = Enumerable.Range(0, 60).Select(i => (i % 4) switch
        {
            0 => $"{{\"id\":{i},\"s\":\"{new string('}', i * 7 % 90)}\\\"\"}}",
            1 => $"[{string.Join(",", Enumerable.Repeat("[{}]", i % 9))}]",
            2 => $"\"{new string('x', i * 13 % 300)}\\\\\"",
            _ => $"{i}.5",
        }).ToList();
        var data = Bytes(string.Concat(values.Select((v, i) => v + (i % 3 == 0 ? "" : i % 3 == 1 ? "\n" : " \r\n\t"))) + "\n");
        var framer = new JsonStreamFramer(maximumValueLength: 1024);
        for (var seed = 0; seed < 20; seed++)
        {
            Assert.That(FramerDriver.ReadThroughPipe(framer, data, segmentSize, new Random(seed), carryExamined: true, Text), Is.EqualTo(values), $"seed {seed}, carried");
            Assert.That(FramerDriver.ReadThroughPipe(framer, data, segmentSize, new Random(seed), carryExamined: false, Text), Is.EqualTo(values), $"seed {seed}, not carried");
        }
    }

    [Test]
    public void Input_that_starts_at_the_end_of_a_segment_is_read_past_the_empty_first_span()
    {
        var sequence = SegmentedSequence.FromChunks("{}", "[1", "]\"a\"");
        var input = sequence.Slice(new SequencePosition(sequence.Start.GetObject(), 2));
        Assert.That(input.FirstSpan.IsEmpty, Is.True, "the setup: an empty first span");

        var (values, remainder) = Parse(new JsonStreamFramer(), input);

        Assert.That(values, Is.EqualTo(new[] { "[1]", "\"a\"" }));
        Assert.That(remainder, Is.Empty);
    }

    [Test]
    public void A_value_straddling_segments_is_returned_as_slices_of_those_segments_without_copying()
    {
        var sequence = SegmentedSequence.FromChunks(" {\"a", "\":", "1}rest");
        var consumed = sequence.Start;
        var examined = sequence.Start;

        Assert.That(new JsonStreamFramer().TryReadMessage(sequence, ref consumed, ref examined, out var value), Is.True);

        Assert.That(Text(value), Is.EqualTo("{\"a\":1}"));
        var sources = new List<byte[]>();
        foreach (var segment in sequence)
        {
            Assert.That(MemoryMarshal.TryGetArray(segment, out var array), Is.True);
            sources.Add(array.Array!);
        }

        var index = 0;
        foreach (var segment in value)
        {
            Assert.That(MemoryMarshal.TryGetArray(segment, out var array), Is.True);
            Assert.That(array.Array, Is.SameAs(sources[index++]));
        }

        Assert.That(index, Is.EqualTo(3));
    }

    [Test]
    public void A_value_that_ends_with_its_segment_is_consumed_up_to_the_start_of_the_next_segment()
    {
        var sequence = SegmentedSequence.FromChunks("{\"a\":", "1}", "[]");
        var consumed = sequence.Start;
        var examined = sequence.Start;

        Assert.That(new JsonStreamFramer().TryReadMessage(sequence, ref consumed, ref examined, out _), Is.True);

        Assert.That(consumed.GetInteger(), Is.Zero);
        Assert.That(sequence.Slice(consumed).FirstSpan.ToArray(), Is.EqualTo(Bytes("[]")), "the next read's fast path sees the next value");
    }

    // ---- Resuming where the last call stopped ---------------------------------------------------

    [Test]
    public void A_one_MiB_value_fed_in_4_KiB_reads_has_each_segment_scanned_once_not_once_per_read()
    {
        const int segmentSize = 4096;
        var payload = new byte[1 << 20];
        payload.AsSpan().Fill((byte)'a');
        "{\"blob\":\"{[\\\""u8.CopyTo(payload);
        "\"}"u8.CopyTo(payload.AsSpan(payload.Length - 2));
        var segments = CountingSegment.Chain(payload, segmentSize);
        var framer = new JsonStreamFramer(maximumValueLength: payload.Length);

        SequencePosition resume = default;
        var reads = 0;
        var delivered = -1L;
        while (delivered < 0)
        {
            // Each read adds one whole segment, as a pipe adds a block.
            var last = segments[reads];
            var buffer = new ReadOnlySequence<byte>(segments[0], 0, last, last.Memory.Length);
            var consumed = buffer.Start;
            var examined = resume.GetObject() is null ? buffer.Start : resume;
            reads++;
            if (framer.TryReadMessage(buffer, ref consumed, ref examined, out var value))
            {
                delivered = value.Length;
            }

            resume = examined;
        }

        Assert.That(reads, Is.EqualTo(segments.Count));
        Assert.That(delivered, Is.EqualTo(payload.Length));
        var fetches = segments.Select(s => s.SpanFetches).ToList();
        Assert.That(fetches.Max(), Is.LessThanOrEqualTo(2), "a segment is scanned when it arrives, and its empty rest fetched once when the next read resumes there");
        Assert.That(fetches.Sum(), Is.LessThan(2 * segments.Count));
    }

    [Test]
    public void An_examined_position_at_the_input_start_scans_it_all_even_after_a_call_that_stopped_elsewhere()
    {
        var framer = new JsonStreamFramer();
        var whole = SegmentedSequence.FromChunks("[[", "]]");
        var firstRead = whole.Slice(0, 2);
        var consumed = firstRead.Start;
        var examined = firstRead.Start;
        Assert.That(framer.TryReadMessage(firstRead, ref consumed, ref examined, out _), Is.False);

        consumed = whole.Start;
        examined = whole.Start;
        Assert.That(framer.TryReadMessage(whole, ref consumed, ref examined, out var value), Is.True);

        Assert.That(Text(value), Is.EqualTo("[[]]"));
    }

    [Test]
    public void A_stopping_position_handed_back_with_a_different_start_is_not_trusted_and_the_input_is_scanned_from_its_start()
    {
        // The state after "[[" is two arrays deep; from one byte further on, "[" + "{}" is one array deep.
        var data = Bytes("[[{}]]");
        var framer = new JsonStreamFramer();
        var firstRead = new ReadOnlySequence<byte>(data, 0, 2);
        var consumed = firstRead.Start;
        var examined = firstRead.Start;
        Assert.That(framer.TryReadMessage(firstRead, ref consumed, ref examined, out _), Is.False);

        var shifted = new ReadOnlySequence<byte>(data, 1, 5);
        consumed = shifted.Start;
        Assert.That(framer.TryReadMessage(shifted, ref consumed, ref examined, out var value), Is.True);

        Assert.That(Text(value), Is.EqualTo("[{}]"));
    }

    [Test]
    public void Reset_forgets_the_scan_so_that_a_stale_stopping_position_in_reused_memory_is_not_resumed()
    {
        // A new connection whose buffer reuses the memory of the last one, at the same position.
        var memory = Bytes("[[xx");
        var framer = new JsonStreamFramer();
        var oldRead = new ReadOnlySequence<byte>(memory, 0, 2);
        var consumed = oldRead.Start;
        var examined = oldRead.Start;
        Assert.That(framer.TryReadMessage(oldRead, ref consumed, ref examined, out _), Is.False);
        var stale = examined;

        framer.Reset();
        Bytes("{}{}").CopyTo(memory, 0);
        var newRead = new ReadOnlySequence<byte>(memory);
        consumed = newRead.Start;
        examined = stale;
        Assert.That(framer.TryReadMessage(newRead, ref consumed, ref examined, out var value), Is.True);

        Assert.That(Text(value), Is.EqualTo("{}"));
    }

    // ---- Limits ---------------------------------------------------------------------------------

    [TestCase("{\"a\":\"01234567\"}")]
    [TestCase("\"01234567890123\"")]
    [TestCase("1234567890123456")]
    public void A_value_of_exactly_the_maximum_length_is_accepted(string value)
    {
        Assert.That(value, Has.Length.EqualTo(SmallLimit));
        var framer = new JsonStreamFramer(SmallLimit);
        var data = Bytes("\n\n" + value + " ");
        for (var split = 0; split <= data.Length; split++)
        {
            var (values, _) = Parse(framer, SegmentedSequence.Split(data, split));

            Assert.That(values, Is.EqualTo(new[] { value }), $"split at {split}");
        }
    }

    [TestCase("{\"a\":\"012345678\"}")]
    [TestCase("\"012345678901234\"")]
    [TestCase("12345678901234567")]
    public void A_value_one_byte_over_the_maximum_length_raises_FrameTooLargeException_at_every_split_point(string value)
    {
        Assert.That(value, Has.Length.EqualTo(SmallLimit + 1));
        var framer = new JsonStreamFramer(SmallLimit);
        var data = Bytes(value + " ");
        for (var split = 0; split <= data.Length; split++)
        {
            var input = SegmentedSequence.Split(data, split);

            var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, input, Text), $"split at {split}");

            Assert.That(error!.MaximumLength, Is.EqualTo(SmallLimit));
            Assert.That(error.ObservedLength, Is.EqualTo(SmallLimit + 1), $"split at {split}");
        }
    }

    [Test]
    public void An_oversize_value_raises_as_soon_as_more_than_the_limit_of_it_is_buffered_without_waiting_for_its_end()
    {
        var framer = new JsonStreamFramer(SmallLimit);
        var data = Bytes("  {\"a\":\"" + new string('x', 100) + "\"}");
        for (var arrived = 1; arrived <= SmallLimit + 2; arrived++)
        {
            var (values, _) = Parse(framer, SegmentedSequence.OfSegmentSize(data[..arrived], 1));
            Assert.That(values, Is.Empty, $"after {arrived} bytes");
        }

        var overflow = SegmentedSequence.OfSegmentSize(data[..(SmallLimit + 3)], 1);
        var error = Assert.Throws<FrameTooLargeException>(() => FramerDriver.ReadAll(framer, overflow, Text));

        Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 1), "the whitespace before the value does not count");
    }

    [Test]
    public void Whitespace_longer_than_the_limit_with_no_value_after_it_raises_FrameTooLargeException()
    {
        var framer = new JsonStreamFramer(SmallLimit);

        var (values, _) = Parse(framer, new string('\n', SmallLimit));
        Assert.That(values, Is.Empty);

        var error = Assert.Throws<FrameTooLargeException>(() => Parse(framer, new string('\n', SmallLimit + 1)));
        Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 1));
    }

    [Test]
    public void The_limit_applies_to_each_value_not_to_the_buffered_bytes()
    {
        var value = "[\"" + new string('v', SmallLimit - 4) + "\"]";
        var (values, remainder) = Parse(new JsonStreamFramer(SmallLimit), string.Concat(Enumerable.Repeat(value + "\n", 10)));

        Assert.That(values, Is.EqualTo(Enumerable.Repeat(value, 10)));
        Assert.That(remainder, Is.EqualTo("\n"));
    }

    [Test]
    public void Nesting_up_to_the_maximum_depth_is_accepted_and_brackets_inside_strings_do_not_count()
    {
        var (values, _) = Parse(new JsonStreamFramer(maximumDepth: 3), "[{\"a\":[\"[[{{\"]}] {\"b\":{\"c\":[]}}");

        Assert.That(values, Is.EqualTo(new[] { "[{\"a\":[\"[[{{\"]}]", "{\"b\":{\"c\":[]}}" }));
    }

    [Test]
    public void An_opening_bracket_beyond_the_maximum_depth_raises_FrameNestingException_before_the_value_ends()
    {
        var framer = new JsonStreamFramer(maximumDepth: 3);
        var data = Bytes(" [{\"a\":[[");
        for (var split = 0; split <= data.Length; split++)
        {
            var input = SegmentedSequence.Split(data, split);

            var error = Assert.Throws<FrameNestingException>(() => FramerDriver.ReadAll(framer, input, Text), $"split at {split}");

            Assert.That(error!.MaximumDepth, Is.EqualTo(3));
            Assert.That(error.Offset, Is.EqualTo(8), "the fourth opening bracket, counted from the frame's first byte");
            Assert.That(error, Is.InstanceOf<ProtocolException>());
        }
    }

    // ---- Bytes that cannot start a value --------------------------------------------------------

    [TestCase("}", (byte)'}', 0)]
    [TestCase("  ]", (byte)']', 2)]
    [TestCase("\n,{}", (byte)',', 1)]
    [TestCase(":", (byte)':', 0)]
    [TestCase("\u0001", 0x01, 0)]
    [TestCase("x", (byte)'x', 0)]
    [TestCase("'a'", (byte)'\'', 0)]
    [TestCase("\u00e9", 0xE9, 0)]
    public void A_byte_that_cannot_start_a_value_raises_UnexpectedByteException_naming_the_byte_and_its_offset(string input, byte value, int offset)
    {
        var error = Assert.Throws<UnexpectedByteException>(() => Parse(new JsonStreamFramer(), input));

        Assert.That(error!.Value, Is.EqualTo(value));
        Assert.That(error.Offset, Is.EqualTo(offset));
        Assert.That(error.Message, Does.Contain($"0x{value:X2}").And.Contain($"offset {offset}"));
        Assert.That(error, Is.InstanceOf<ProtocolException>());
    }

    [Test]
    public void A_stray_closing_brace_after_a_value_raises_only_once_the_value_before_it_is_delivered()
    {
        var framer = new JsonStreamFramer();
        var input = new ReadOnlySequence<byte>(Bytes("{\"a\":{}}}"));
        var consumed = input.Start;
        var examined = input.Start;
        Assert.That(framer.TryReadMessage(input, ref consumed, ref examined, out var value), Is.True);
        Assert.That(Text(value), Is.EqualTo("{\"a\":{}}"));

        var rest = input.Slice(consumed);
        var error = Assert.Throws<UnexpectedByteException>(() => FramerDriver.ReadAll(framer, rest, Text));
        Assert.That(error!.Value, Is.EqualTo((byte)'}'));
        Assert.That(error.Offset, Is.Zero);
    }

    // ---- End of stream --------------------------------------------------------------------------

    [TestCase("42", "42")]
    [TestCase("\n\n -3.25", "-3.25")]
    [TestCase("null", "null")]
    [TestCase("tr", "tr")]
    public void At_the_end_of_the_stream_a_pending_top_level_scalar_is_delivered(string remainder, string expected)
    {
        var framer = new JsonStreamFramer();
        var data = Bytes(remainder);
        for (var split = 0; split <= data.Length; split++)
        {
            Assert.That(framer.TryReadFinalMessage(SegmentedSequence.Split(data, split), out var value), Is.True);
            Assert.That(Text(value), Is.EqualTo(expected), $"split at {split}");
        }
    }

    [TestCase(" ")]
    [TestCase("\r\n\r\n")]
    [TestCase("\t\n ")]
    public void At_the_end_of_the_stream_whitespace_alone_is_no_frame_and_no_error(string remainder)
    {
        Assert.That(new JsonStreamFramer().TryReadFinalMessage(new ReadOnlySequence<byte>(Bytes(remainder)), out _), Is.False);
    }

    [TestCase("{")]
    [TestCase(" [1,2")]
    [TestCase("\"abc")]
    [TestCase("{\"a\":\"}\"")]
    [TestCase("\"\\")]
    public void At_the_end_of_the_stream_an_unfinished_object_array_or_string_raises_IncompleteFrameException(string remainder)
    {
        var error = Assert.Throws<IncompleteFrameException>(() => new JsonStreamFramer().TryReadFinalMessage(new ReadOnlySequence<byte>(Bytes(remainder)), out _));

        Assert.That(error!.BytesReceived, Is.EqualTo(remainder.Length));
        Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
    }

    [Test]
    public void At_the_end_of_the_stream_a_pending_scalar_over_the_limit_raises_FrameTooLargeException()
    {
        var remainder = new ReadOnlySequence<byte>(Bytes(" " + new string('1', SmallLimit + 1)));

        var error = Assert.Throws<FrameTooLargeException>(() => new JsonStreamFramer(SmallLimit).TryReadFinalMessage(remainder, out _));

        Assert.That(error!.ObservedLength, Is.EqualTo(SmallLimit + 1));
    }

    [Test]
    public void A_remainder_holding_a_complete_value_is_a_misuse_of_TryReadFinalMessage()
    {
        Assert.Throws<InvalidOperationException>(() => new JsonStreamFramer().TryReadFinalMessage(new ReadOnlySequence<byte>(Bytes("{} 1")), out _));
    }

    // ---- Writing --------------------------------------------------------------------------------

    [TestCase("\n", "{\"a\":1}\n[]\n")]
    [TestCase("", "{\"a\":1}[]")]
    [TestCase("\r\n", "{\"a\":1}\r\n[]\r\n")]
    public void WriteMessage_writes_each_value_followed_by_the_separator(string separator, string expected)
    {
        var framer = new JsonStreamFramer(separator: separator);
        var output = new ArrayBufferWriter<byte>();

        framer.WriteMessage(SegmentedSequence.FromChunks("{\"a\"", ":1}"), output);
        framer.WriteMessage(new ReadOnlySequence<byte>(Bytes("[]")), output);

        Assert.That(Encoding.Latin1.GetString(output.WrittenSpan), Is.EqualTo(expected));
        Assert.That(framer.Separator, Is.EqualTo(separator));
    }

    [TestCase(",")]
    [TestCase("\n;")]
    [TestCase("\u00a0")]
    public void A_separator_other_than_whitespace_is_rejected(string separator)
    {
        Assert.Throws<ArgumentException>(() => _ = new JsonStreamFramer(separator: separator));
    }

    [Test]
    public void Written_values_parse_back_to_the_same_values()
    {
        string[] messages = ["{\"execute\":\"query-status\"}", "[1,\"]\"]", "\"s\"", "12", "true", "{}"];
        var framer = new JsonStreamFramer();
        var output = new ArrayBufferWriter<byte>();
        foreach (var message in messages)
        {
            framer.WriteMessage(new ReadOnlySequence<byte>(Bytes(message)), output);
        }

        var written = output.WrittenSpan.ToArray();
        var (single, rest) = Parse(framer, new ReadOnlySequence<byte>(written));
        Assert.That(single, Is.EqualTo(messages));
        Assert.That(rest, Is.EqualTo("\n"));
        Assert.That(Parse(framer, SegmentedSequence.OfSegmentSize(written, 3)).Values, Is.EqualTo(messages));
    }

    // ---- Configuration --------------------------------------------------------------------------

    [Test]
    public void The_defaults_are_a_64_KiB_value_a_depth_of_64_and_a_line_feed_after_each_written_value()
    {
        IMessageFramer<ReadOnlySequence<byte>> framer = new JsonStreamFramer();
        var concrete = (JsonStreamFramer)framer;

        Assert.That(concrete.MaximumValueLength, Is.EqualTo(65536));
        Assert.That(concrete.MaximumDepth, Is.EqualTo(64));
        Assert.That(concrete.Separator, Is.EqualTo("\n"));
        Assert.That(framer.MaximumFrameLength, Is.EqualTo(2 * 65536L), "up to the limit of whitespace before a value of up to the limit");
    }

    [TestCase(0, 1)]
    [TestCase(1, 0)]
    [TestCase(-1, 64)]
    [TestCase(16, int.MinValue)]
    public void Constructor_rejects_limits_below_one(int maximumValueLength, int maximumDepth)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new JsonStreamFramer(maximumValueLength, maximumDepth));
    }

    // ---- Zero copy and allocation ---------------------------------------------------------------

    [Test]
    public void A_value_parsed_from_a_single_segment_input_points_into_the_same_backing_array()
    {
        var backing = Bytes("##{\"a\":1}\n [2]");
        var input = new ReadOnlySequence<byte>(backing.AsMemory(2));
        var (found, _) = FramerDriver.ReadAll(new JsonStreamFramer(), input, message =>
        {
            Assert.That(MemoryMarshal.TryGetArray(message.First, out var segment), Is.True);
            return (segment.Array, segment.Offset, segment.Count);
        });

        Assert.That(found, Is.EqualTo(new[] { (backing, 2, 7), (backing, 11, 3) }));
    }

    [Test]
    public void Parsing_a_thousand_small_objects_from_one_segment_allocates_nothing()
    {
        const int count = 1000;
        var one = Bytes("{\"execute\":\"query-status\",\"arguments\":{\"a\":[1,\"}\\\"\"]},\"id\":7}\n");
        var data = new byte[count * one.Length];
        for (var i = 0; i < count; i++)
        {
            one.CopyTo(data, i * one.Length);
        }

        var (frameBytes, remainderLength, allocated) = FramerDriver.CountFrameBytesMeasuringAllocation(new JsonStreamFramer(), new ReadOnlySequence<byte>(data));

        Assert.That(frameBytes, Is.EqualTo(count * (long)(one.Length - 1)));
        Assert.That(remainderLength, Is.EqualTo(1), "the line feed after the last value");
        Assert.That(allocated, Is.Zero);
    }

    // ---- Through a session ----------------------------------------------------------------------

    [Test]
    public async Task A_session_receives_values_written_in_arbitrary_chunks_with_or_without_whitespace_between_them()
    {
        var random = new Random(42);
        var values = Enumerable.Range(0, 200).Select(i => i % 5 == 4
            ? $"{{\"big\":\"{new string('b', random.Next(0, 20_000))}\"}}"
            : $"{{\"execute\":\"cmd-{i}\",\"arguments\":{{\"s\":\"}}{{\\\"\",\"n\":[{i},[]]}}}}").ToList();
        var wire = Bytes(string.Concat(values.Select((v, i) => (i % 3) switch { 0 => v, 1 => v + "\n", _ => "\r\n\t " + v })));

        var (left, right) = DuplexPipePair.Create();
        await using var receiver = new BlobProtocol(new JsonStreamFramer(maximumValueLength: 32 * 1024));
        await receiver.OpenAsync(right).Bounded();
        for (var written = 0; written < wire.Length;)
        {
            var chunk = Math.Min(random.Next(1, 3000), wire.Length - written);
            await left.Output.WriteAsync(wire.AsMemory(written, chunk)).Bounded();
            written += chunk;
        }

        foreach (var expected in values)
        {
            Assert.That(Text(new ReadOnlySequence<byte>(await receiver.Received.ReadAsync().Bounded())), Is.EqualTo(expected));
        }

        await left.Output.CompleteAsync();
        await receiver.UntilRunstateAsync(Runstate.Disconnecting);
        await Assert.ThrowsAsync<EndOfStreamException>(() => receiver.DisconnectAsync().Bounded());
    }

    [Test]
    public async Task Two_sessions_exchange_values_through_the_framer_in_both_directions()
    {
        var (left, right) = DuplexPipePair.Create();
        await using var a = new BlobProtocol(new JsonStreamFramer());
        await using var b = new BlobProtocol(new JsonStreamFramer(separator: ""));
        await a.OpenAsync(left).Bounded();
        await b.OpenAsync(right).Bounded();

        await a.SendBlobAsync(Bytes("{\"x\":1}")).Bounded();
        await a.SendBlobAsync(Bytes("7")).Bounded();
        await b.SendBlobAsync(Bytes("[\"y\"]")).Bounded();
        await b.SendBlobAsync(Bytes("{}")).Bounded();

        Assert.That(Text(new ReadOnlySequence<byte>(await b.Received.ReadAsync().Bounded())), Is.EqualTo("{\"x\":1}"));
        Assert.That(Text(new ReadOnlySequence<byte>(await b.Received.ReadAsync().Bounded())), Is.EqualTo("7"), "the line feed after it ends the number");
        Assert.That(Text(new ReadOnlySequence<byte>(await a.Received.ReadAsync().Bounded())), Is.EqualTo("[\"y\"]"));
        Assert.That(Text(new ReadOnlySequence<byte>(await a.Received.ReadAsync().Bounded())), Is.EqualTo("{}"));
        await a.DisconnectAsync().Bounded();
    }

    [TestCase("{}\n12", new[] { "{}", "12" }, TestName = "At_a_sessions_end_of_stream_a_pending_number_is_delivered_before_the_end")]
    [TestCase("{}\n \r\n", new[] { "{}" }, TestName = "At_a_sessions_end_of_stream_trailing_whitespace_ends_it_as_at_a_frame_boundary")]
    public async Task The_end_of_stream_after_values(string wire, string[] expected)
    {
        var (left, right) = DuplexPipePair.Create();
        await using var receiver = new BlobProtocol(new JsonStreamFramer());
        await receiver.OpenAsync(right).Bounded();

        await left.Output.WriteAsync(Bytes(wire)).Bounded();
        await left.Output.CompleteAsync();
        foreach (var value in expected)
        {
            Assert.That(Text(new ReadOnlySequence<byte>(await receiver.Received.ReadAsync().Bounded())), Is.EqualTo(value));
        }

        await receiver.UntilRunstateAsync(Runstate.Disconnecting);
        await Assert.ThrowsAsync<EndOfStreamException>(() => receiver.DisconnectAsync().Bounded());
    }

    [Test]
    public async Task At_a_sessions_end_of_stream_an_unfinished_object_raises_IncompleteFrameException()
    {
        var (left, right) = DuplexPipePair.Create();
        await using var receiver = new BlobProtocol(new JsonStreamFramer());
        await receiver.OpenAsync(right).Bounded();

        await left.Output.WriteAsync(Bytes("{}\n{\"a\":")).Bounded();
        await left.Output.CompleteAsync();
        Assert.That(Text(new ReadOnlySequence<byte>(await receiver.Received.ReadAsync().Bounded())), Is.EqualTo("{}"));

        await receiver.UntilRunstateAsync(Runstate.Disconnecting);
        var error = await Assert.ThrowsAsync<IncompleteFrameException>(() => receiver.DisconnectAsync().Bounded());
        Assert.That(error!.BytesReceived, Is.EqualTo(6), "the newline before it included: the bytes after the last frame");
    }

    /// <summary>A chain of segments whose memory counts how often its span is fetched: how often the framer looks at it.</summary>
    private sealed class CountingSegment : ReadOnlySequenceSegment<byte>
    {
        private readonly Counter _counter;

        private CountingSegment(byte[] bytes, long runningIndex)
        {
            _counter = new Counter(bytes);
            Memory = _counter.Memory;
            RunningIndex = runningIndex;
            _counter.Fetches = 0;
        }

        public int SpanFetches => _counter.Fetches;

        public static List<CountingSegment> Chain(byte[] data, int segmentSize)
        {
            var segments = new List<CountingSegment>();
            for (var offset = 0; offset < data.Length; offset += segmentSize)
            {
                var segment = new CountingSegment(data.AsSpan(offset, Math.Min(segmentSize, data.Length - offset)).ToArray(), offset);
                if (segments.Count > 0)
                {
                    segments[^1].Next = segment;
                }

                segments.Add(segment);
            }

            return segments;
        }

        private sealed class Counter(byte[] bytes) : MemoryManager<byte>
        {
            public int Fetches { get; set; }

            public override Span<byte> GetSpan()
            {
                Fetches++;
                return bytes;
            }

            public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();

            public override void Unpin()
            {
            }

            protected override void Dispose(bool disposing)
            {
            }
        }
    }
}
