using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Testing;
using Aqmp.Pipelines.Qmp.Tests.Support;

namespace Aqmp.Pipelines.Qmp.Tests.Messages;

/// <summary>
/// <see cref="QmpFramer"/>: one JSON object per line in, compact one-line JSON plus LF out, and the
/// line-length limit; driven the way the session's read loop drives a framer.
/// </summary>
public class QmpFramerTests
{
    // Real QEMU 7.2 output, one message per line; QEMU ends each line with CRLF.
    private static readonly string[] QemuLines =
    [
        """{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}""",
        """{"return": {"status": "running", "singlestep": false, "running": true}, "id": 1}""",
        """{"timestamp": {"seconds": 1795622111, "microseconds": 740784}, "event": "STOP"}""",
        """{"id": 2, "error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}""",
        """{"timestamp": {"seconds": 1795622111, "microseconds": 929158}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}""",
    ];

    private static readonly QmpMessageKind[] QemuKinds =
    [
        QmpMessageKind.Greeting,
        QmpMessageKind.Return,
        QmpMessageKind.Event,
        QmpMessageKind.Error,
        QmpMessageKind.Event,
    ];

    private const int SchemaEntries = 1051;

    private static string SchemaPath => Path.Combine(TestContext.CurrentContext.TestDirectory, "Data", "query-qmp-schema.json");

    // ----------------------------------------------------------------------------------------
    // Reading
    // ----------------------------------------------------------------------------------------

    [Test]
    public void Reads_one_CRLF_terminated_QEMU_line_and_consumes_it_with_its_terminator()
    {
        var framer = new QmpFramer();
        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(QemuLines[1] + "\r\n"));
        var consumed = buffer.Start;
        var examined = buffer.Start;

        var read = framer.TryReadMessage(buffer, ref consumed, ref examined, out var message);

        Assert.That(read, Is.True);
        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Return));
        Assert.That(message.Id!.Value.GetInt32(), Is.EqualTo(1));
        Assert.That(message.ToString(), Is.EqualTo(QemuLines[1]), "the CR is not part of the message");
        Assert.That(consumed, Is.EqualTo(buffer.End));
        Assert.That(examined, Is.EqualTo(buffer.End));
    }

    [Test]
    public void Reads_one_LF_terminated_line()
    {
        var framer = new QmpFramer();
        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(QemuLines[2] + "\n"));
        var consumed = buffer.Start;
        var examined = buffer.Start;

        Assert.That(framer.TryReadMessage(buffer, ref consumed, ref examined, out var message), Is.True);
        Assert.That(message.EventName, Is.EqualTo("STOP"));
        Assert.That(consumed, Is.EqualTo(buffer.End));
    }

    [TestCase("\r\n", TestName = "Reads_every_QEMU_CRLF_line_from_one_single_segment_buffer_in_order")]
    [TestCase("\n", TestName = "Reads_every_LF_line_from_one_single_segment_buffer_in_order")]
    public void Reads_every_line_from_one_single_segment_buffer_in_order(string terminator)
    {
        var bytes = Wire(terminator, QemuLines);

        var messages = ReadAll(new QmpFramer(), new ReadOnlySequence<byte>(bytes), out var remainder);

        AssertAreTheQemuLines(messages);
        Assert.That(remainder.IsEmpty, Is.True);
    }

    [TestCase("\r\n", 1)]
    [TestCase("\r\n", 2)]
    [TestCase("\r\n", 3)]
    [TestCase("\r\n", 7)]
    [TestCase("\r\n", 64)]
    [TestCase("\r\n", 4096)]
    [TestCase("\n", 1)]
    [TestCase("\n", 5)]
    [TestCase("\n", 100)]
    public void Reads_every_line_from_a_multi_segment_buffer_in_order(string terminator, int segmentLength)
    {
        var bytes = Wire(terminator, QemuLines);
        var buffer = SegmentedSequence.OfSegmentSize(bytes, segmentLength);

        var messages = ReadAll(new QmpFramer(), buffer, out var remainder);

        AssertAreTheQemuLines(messages);
        Assert.That(remainder.IsEmpty, Is.True);
    }

    [Test]
    public void Reads_a_line_whose_CR_and_LF_are_in_different_segments()
    {
        var line = Encoding.UTF8.GetBytes(QemuLines[1] + "\r");
        var buffer = SegmentedSequence.FromChunks(line, "\n"u8.ToArray());

        var messages = ReadAll(new QmpFramer(), buffer, out var remainder);

        Assert.That(messages, Has.Count.EqualTo(1));
        Assert.That(messages[0].ToString(), Is.EqualTo(QemuLines[1]));
        Assert.That(remainder.IsEmpty, Is.True);
    }

    [Test]
    public void Leaves_a_partial_last_line_unconsumed_but_examined_so_the_session_waits_for_more()
    {
        var framer = new QmpFramer();
        var complete = Encoding.UTF8.GetBytes(QemuLines[1] + "\r\n");
        var partial = Encoding.UTF8.GetBytes(QemuLines[2][..20]);
        var buffer = SegmentedSequence.FromChunks(complete, partial);
        var consumed = buffer.Start;
        var examined = buffer.Start;

        Assert.That(framer.TryReadMessage(buffer, ref consumed, ref examined, out var first), Is.True);
        Assert.That(first.Kind, Is.EqualTo(QmpMessageKind.Return));
        buffer = buffer.Slice(consumed);
        var consumedBefore = consumed;

        Assert.That(framer.TryReadMessage(buffer, ref consumed, ref examined, out _), Is.False);
        Assert.That(consumed, Is.EqualTo(consumedBefore), "consumed is left alone on failure");
        Assert.That(examined, Is.EqualTo(buffer.End), "examined is the end, so the session waits for more bytes");
    }

    [Test]
    public void Returns_false_on_an_empty_buffer()
    {
        var framer = new QmpFramer();
        var buffer = ReadOnlySequence<byte>.Empty;
        var consumed = buffer.Start;
        var examined = buffer.Start;

        Assert.That(framer.TryReadMessage(buffer, ref consumed, ref examined, out _), Is.False);
    }

    [TestCase(1)]
    [TestCase(3)]
    [TestCase(17)]
    [TestCase(4096)]
    public async Task Reads_every_QEMU_line_arriving_in_small_writes_through_a_pipe(int writeLength)
    {
        var messages = await ReadThroughPipeAsync(new QmpFramer(), Wire("\r\n", QemuLines), writeLength).Bounded();

        AssertAreTheQemuLines(messages);
    }

    [Test]
    public void Raises_QmpParseException_for_a_line_that_is_not_a_QMP_message_quoting_it_without_terminator()
    {
        var framer = new QmpFramer();
        var buffer = new ReadOnlySequence<byte>("{\"return\": \r\n"u8.ToArray());
        var consumed = buffer.Start;
        var examined = buffer.Start;

        var ex = Assert.Throws<QmpParseException>(() => framer.TryReadMessage(buffer, ref consumed, ref examined, out _))!;

        Assert.That(ex.Excerpt, Is.EqualTo("'{\"return\": '"));
    }

    [Test]
    public void Raises_QmpParseException_for_a_JSON_array_line()
    {
        var framer = new QmpFramer();
        var buffer = SegmentedSequence.OfSegmentSize("[1, 2, 3]\r\n"u8.ToArray(), 2);
        var consumed = buffer.Start;
        var examined = buffer.Start;

        var ex = Assert.Throws<QmpParseException>(() => framer.TryReadMessage(buffer, ref consumed, ref examined, out _))!;

        Assert.That(ex.Excerpt, Is.EqualTo("'[1, 2, 3]'"));
    }

    [Test]
    public void Raises_QmpParseException_for_a_line_with_invalid_UTF8_instead_of_delivering_a_message()
    {
        var framer = new QmpFramer();
        byte[] line = [.. "{\"event\": \"ST"u8, 0xFF, .. "OP\"}\r\n"u8];
        var buffer = new ReadOnlySequence<byte>(line);
        var consumed = buffer.Start;
        var examined = buffer.Start;

        var ex = Assert.Throws<QmpParseException>(() => framer.TryReadMessage(buffer, ref consumed, ref examined, out _))!;

        Assert.That(ex.Excerpt, Is.EqualTo("'{\"event\": \"ST\uFFFDOP\"}'"));
    }

    [Test]
    public void An_unterminated_line_at_the_end_of_the_stream_is_an_incomplete_frame()
    {
        var framer = new QmpFramer();
        var remainder = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(QemuLines[1]));

        Assert.Throws<IncompleteFrameException>(() => framer.TryReadFinalMessage(remainder, out _));
    }

    // ----------------------------------------------------------------------------------------
    // Writing
    // ----------------------------------------------------------------------------------------

    [Test]
    public void Writes_a_command_as_compact_JSON_followed_by_a_single_LF()
    {
        var output = new ArrayBufferWriter<byte>();

        new QmpFramer().WriteMessage(QmpMessage.Command("query-status", id: QmpJson.Number(1)), output);

        Assert.That(Encoding.UTF8.GetString(output.WrittenSpan), Is.EqualTo("{\"execute\":\"query-status\",\"id\":1}\n"));
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public void Writes_a_parsed_QEMU_message_as_one_compact_line_that_parses_back_equal(int line)
    {
        var message = QmpMessage.Parse(QemuLines[line]);
        var output = new ArrayBufferWriter<byte>();

        new QmpFramer().WriteMessage(message, output);

        var written = Encoding.UTF8.GetString(output.WrittenSpan);
        Assert.That(written, Does.EndWith("\n"));
        Assert.That(written.Count(c => c == '\n'), Is.EqualTo(1), "exactly one LF, at the end");
        Assert.That(written, Does.Not.Contain("\r"));
        Assert.That(written, Is.EqualTo(Compact(QemuLines[line]) + "\n"), "compact: no insignificant whitespace");
        var reparsed = QmpMessage.Parse(written[..^1]);
        Assert.That(reparsed.Kind, Is.EqualTo(message.Kind));
        Assert.That(JsonElement.DeepEquals(reparsed.Root, message.Root), Is.True);
    }

    [Test]
    public void Writes_several_messages_into_one_buffer_that_reads_back_as_the_same_messages()
    {
        var framer = new QmpFramer();
        var sent = QemuLines.Select(QmpMessage.Parse).Append(QmpMessage.Command("query-status", id: QmpJson.String("q"), outOfBand: true)).ToList();
        var output = new ArrayBufferWriter<byte>();

        foreach (var message in sent)
        {
            framer.WriteMessage(message, output);
        }

        var received = ReadAll(framer, new ReadOnlySequence<byte>(output.WrittenMemory), out var remainder);

        Assert.That(remainder.IsEmpty, Is.True);
        Assert.That(received, Has.Count.EqualTo(sent.Count));
        for (var i = 0; i < sent.Count; i++)
        {
            Assert.That(received[i].Kind, Is.EqualTo(sent[i].Kind));
            Assert.That(JsonElement.DeepEquals(received[i].Root, sent[i].Root), Is.True, $"message {i}");
        }
    }

    [Test]
    public void Writes_each_message_whole_into_whichever_buffer_it_is_given()
    {
        var framer = new QmpFramer();
        var first = new ArrayBufferWriter<byte>();
        var second = new ArrayBufferWriter<byte>();

        framer.WriteMessage(QmpMessage.Command("stop"), first);
        framer.WriteMessage(QmpMessage.Command("cont"), second);
        framer.WriteMessage(QmpMessage.Command("query-status"), first);

        Assert.That(Encoding.UTF8.GetString(first.WrittenSpan), Is.EqualTo("{\"execute\":\"stop\"}\n{\"execute\":\"query-status\"}\n"));
        Assert.That(Encoding.UTF8.GetString(second.WrittenSpan), Is.EqualTo("{\"execute\":\"cont\"}\n"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Writes_quit_without_a_line_feed_so_that_QEMU_which_exits_at_its_closing_brace_leaves_no_byte_unread(bool outOfBand)
    {
        var framer = new QmpFramer();
        var output = new ArrayBufferWriter<byte>();

        framer.WriteMessage(QmpMessage.Command("quit", id: QmpJson.Number(7), outOfBand: outOfBand), output);

        var text = Encoding.UTF8.GetString(output.WrittenSpan);
        Assert.That(text, Does.EndWith("}"), "nothing after the closing brace");
        Assert.That(QmpMessage.Parse(text).CommandName, Is.EqualTo("quit"));
    }

    [Test]
    public async Task Writes_correctly_from_many_threads_at_once()
    {
        var framer = new QmpFramer();

        var outputs = await Task.WhenAll(Enumerable.Range(0, 16).Select(t => Task.Run(() =>
        {
            var output = new ArrayBufferWriter<byte>();
            for (var i = 0; i < 200; i++)
            {
                framer.WriteMessage(QmpMessage.Command("query-status", id: QmpJson.Number((t * 1000) + i)), output);
            }

            return (t, text: Encoding.UTF8.GetString(output.WrittenSpan));
        }))).Bounded();

        foreach (var (t, text) in outputs)
        {
            var expected = string.Concat(Enumerable.Range(0, 200).Select(i => $"{{\"execute\":\"query-status\",\"id\":{(t * 1000) + i}}}\n"));
            Assert.That(text, Is.EqualTo(expected));
        }
    }

    [Test]
    public void Writes_strings_containing_line_breaks_escaped_so_the_message_stays_one_line()
    {
        const string Text = "line one\nline two\r\nline three\rend\u2028\u2029";
        var message = QmpMessage.Error("GenericError", Text, QmpJson.String("id\nwith\nbreaks"));
        var output = new ArrayBufferWriter<byte>();

        new QmpFramer().WriteMessage(message, output);

        var bytes = output.WrittenSpan.ToArray();
        Assert.That(Array.IndexOf(bytes, (byte)'\n'), Is.EqualTo(bytes.Length - 1), "the only LF is the terminator");
        Assert.That(Array.IndexOf(bytes, (byte)'\r'), Is.EqualTo(-1), "no CR anywhere");
        var received = ReadAll(new QmpFramer(), new ReadOnlySequence<byte>(bytes), out var remainder);
        Assert.That(remainder.IsEmpty, Is.True);
        Assert.That(received, Has.Count.EqualTo(1));
        Assert.That(received[0].ErrorDescription, Is.EqualTo(Text));
        Assert.That(received[0].Id!.Value.GetString(), Is.EqualTo("id\nwith\nbreaks"));
    }

    [Test]
    public void Writes_a_message_parsed_from_multi_line_JSON_as_one_line()
    {
        var message = QmpMessage.Parse("{\r\n  \"execute\": \"query-status\",\n  \"id\": 1\n}\n");
        var output = new ArrayBufferWriter<byte>();

        new QmpFramer().WriteMessage(message, output);

        Assert.That(Encoding.UTF8.GetString(output.WrittenSpan), Is.EqualTo("{\"execute\":\"query-status\",\"id\":1}\n"));
    }

    [Test]
    public void Writes_non_ASCII_text_that_reads_back_unchanged()
    {
        const string Text = "désolé — ошибка — 失败 — 🙂";
        var output = new ArrayBufferWriter<byte>();
        var framer = new QmpFramer();

        framer.WriteMessage(QmpMessage.Error("GenericError", Text, null), output);
        var received = ReadAll(framer, new ReadOnlySequence<byte>(output.WrittenMemory), out _);

        Assert.That(received.Single().ErrorDescription, Is.EqualTo(Text));
    }

    [Test]
    public void WriteMessage_rejects_a_null_message()
    {
        Assert.Throws<ArgumentNullException>(() => new QmpFramer().WriteMessage(null!, new ArrayBufferWriter<byte>()));
    }

    // ----------------------------------------------------------------------------------------
    // Line length limit
    // ----------------------------------------------------------------------------------------

    [Test]
    public void The_default_maximum_message_length_is_10_MiB()
    {
        var framer = new QmpFramer();

        Assert.That(QmpFramer.DefaultMaximumMessageLength, Is.EqualTo(10 * 1024 * 1024));
        Assert.That(framer.MaximumLineLength, Is.EqualTo(QmpFramer.DefaultMaximumMessageLength));
        Assert.That(framer.MaximumFrameLength, Is.EqualTo(QmpFramer.DefaultMaximumMessageLength + 2L), "room for the CRLF");
        Assert.That(framer.WriteCrLf, Is.False);
    }

    [Test]
    public void The_maximum_message_length_is_configurable_and_must_be_positive()
    {
        Assert.That(new QmpFramer(4096).MaximumLineLength, Is.EqualTo(4096));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new QmpFramer(0));
    }

    [TestCase(63)]
    [TestCase(64)]
    public void Accepts_a_CRLF_line_up_to_the_configured_maximum(int length)
    {
        var framer = new QmpFramer(64);
        var buffer = new ReadOnlySequence<byte>(Line(length, "\r\n"));

        var messages = ReadAll(framer, buffer, out var remainder);

        Assert.That(messages, Has.Count.EqualTo(1));
        Assert.That(remainder.IsEmpty, Is.True);
    }

    [TestCase("\r\n")]
    [TestCase("\n")]
    public void Raises_FrameTooLargeException_for_a_terminated_line_one_byte_over_the_configured_maximum(string terminator)
    {
        var framer = new QmpFramer(64);
        var buffer = new ReadOnlySequence<byte>(Line(65, terminator));
        var consumed = buffer.Start;
        var examined = buffer.Start;

        var ex = Assert.Throws<FrameTooLargeException>(() => framer.TryReadMessage(buffer, ref consumed, ref examined, out _))!;

        Assert.That(ex.MaximumLength, Is.EqualTo(64));
        Assert.That(ex.ObservedLength, Is.EqualTo(65));
    }

    [Test]
    public void Raises_FrameTooLargeException_as_soon_as_more_than_the_maximum_is_buffered_without_a_terminator()
    {
        var framer = new QmpFramer(64);
        var buffer = SegmentedSequence.OfSegmentSize(Line(66, string.Empty), 10);
        var consumed = buffer.Start;
        var examined = buffer.Start;

        var ex = Assert.Throws<FrameTooLargeException>(() => framer.TryReadMessage(buffer, ref consumed, ref examined, out _))!;

        Assert.That(ex.MaximumLength, Is.EqualTo(64));
    }

    [Test]
    public void Waits_for_the_LF_when_a_line_of_exactly_the_maximum_is_followed_only_by_its_CR()
    {
        var framer = new QmpFramer(64);
        var buffer = new ReadOnlySequence<byte>(Line(64, "\r"));
        var consumed = buffer.Start;
        var examined = buffer.Start;

        Assert.That(framer.TryReadMessage(buffer, ref consumed, ref examined, out _), Is.False);
        Assert.That(examined, Is.EqualTo(buffer.End));
    }

    [TestCase(-1, 0, TestName = "Accepts_a_valid_JSON_line_of_10_MiB_minus_1_bytes_by_default_in_one_segment")]
    [TestCase(0, 0, TestName = "Accepts_a_valid_JSON_line_of_exactly_10_MiB_by_default_in_one_segment")]
    [TestCase(-1, 64 * 1024, TestName = "Accepts_a_valid_JSON_line_of_10_MiB_minus_1_bytes_by_default_in_64_KiB_segments")]
    public void Accepts_a_valid_JSON_line_up_to_the_default_maximum(int delta, int segmentLength /* 0: one segment */)
    {
        var length = QmpFramer.DefaultMaximumMessageLength + delta;
        var bytes = Line(length, "\r\n");
        var buffer = segmentLength == 0 ? new ReadOnlySequence<byte>(bytes) : SegmentedSequence.OfSegmentSize(bytes, segmentLength);

        var messages = ReadAll(new QmpFramer(), buffer, out var remainder);

        Assert.That(messages, Has.Count.EqualTo(1));
        Assert.That(remainder.IsEmpty, Is.True);
        Assert.That(messages[0].Kind, Is.EqualTo(QmpMessageKind.Return));
        Assert.That(messages[0].ReturnValue!.Value.GetString()!.Length, Is.EqualTo(length - LineOverhead));
    }

    [TestCase("\r\n", TestName = "Rejects_a_valid_JSON_CRLF_line_of_10_MiB_plus_1_bytes_by_default")]
    [TestCase("\n", TestName = "Rejects_a_valid_JSON_LF_line_of_10_MiB_plus_1_bytes_by_default")]
    [TestCase("", TestName = "Rejects_an_unterminated_10_MiB_plus_1_bytes_by_default_without_waiting_for_the_terminator")]
    public void Rejects_a_line_over_the_default_maximum(string terminator)
    {
        var framer = new QmpFramer();
        var length = QmpFramer.DefaultMaximumMessageLength + 1;
        var buffer = new ReadOnlySequence<byte>(Line(length, terminator));
        var consumed = buffer.Start;
        var examined = buffer.Start;

        var ex = Assert.Throws<FrameTooLargeException>(() => framer.TryReadMessage(buffer, ref consumed, ref examined, out _))!;

        Assert.That(ex.MaximumLength, Is.EqualTo(QmpFramer.DefaultMaximumMessageLength));
        Assert.That(ex.ObservedLength, Is.EqualTo(length));
    }

    [Test]
    public async Task Reads_a_10_MiB_minus_1_line_arriving_in_small_writes_through_a_pipe_sized_like_the_session()
    {
        var length = QmpFramer.DefaultMaximumMessageLength - 1;

        var messages = await ReadThroughPipeAsync(new QmpFramer(), Line(length, "\r\n"), 64 * 1024).Bounded();

        Assert.That(messages, Has.Count.EqualTo(1));
        Assert.That(messages[0].ReturnValue!.Value.GetString()!.Length, Is.EqualTo(length - LineOverhead));
    }

    // ----------------------------------------------------------------------------------------
    // Real query-qmp-schema reply
    // ----------------------------------------------------------------------------------------

    [Test]
    public void The_real_schema_reply_parses_as_one_return_whose_value_is_an_array_of_1051_entries()
    {
        var bytes = File.ReadAllBytes(SchemaPath);

        var message = QmpMessage.Parse(bytes.AsSpan());

        AssertIsTheSchema(message);
    }

    [Test]
    public void The_real_schema_line_reads_as_one_return_from_a_single_segment()
    {
        var bytes = File.ReadAllBytes(SchemaPath);
        Assert.That(bytes[^2..], Is.EqualTo("\r\n"u8.ToArray()), "the fixture is the line as QEMU sent it, CRLF included");

        var messages = ReadAll(new QmpFramer(), new ReadOnlySequence<byte>(bytes), out var remainder);

        Assert.That(messages, Has.Count.EqualTo(1));
        Assert.That(remainder.IsEmpty, Is.True);
        AssertIsTheSchema(messages[0]);
    }

    [Test]
    public void The_real_schema_line_reads_as_one_return_from_4_KiB_segments()
    {
        var bytes = File.ReadAllBytes(SchemaPath);
        var buffer = SegmentedSequence.OfSegmentSize(bytes, 4096);
        Assert.That(buffer.IsSingleSegment, Is.False);

        var messages = ReadAll(new QmpFramer(), buffer, out var remainder);

        Assert.That(messages, Has.Count.EqualTo(1));
        Assert.That(remainder.IsEmpty, Is.True);
        AssertIsTheSchema(messages[0]);
    }

    [Test]
    public async Task The_real_schema_line_reads_as_one_return_arriving_in_4_KiB_writes_through_a_pipe()
    {
        var bytes = File.ReadAllBytes(SchemaPath);

        var messages = await ReadThroughPipeAsync(new QmpFramer(), bytes, 4096).Bounded();

        Assert.That(messages, Has.Count.EqualTo(1));
        AssertIsTheSchema(messages[0]);
    }

    // ----------------------------------------------------------------------------------------
    // Helpers
    // ----------------------------------------------------------------------------------------

    /// <summary>Bytes of <c>{"return":"</c> and <c>"}</c> around the padding of <see cref="Line"/>.</summary>
    private const int LineOverhead = 13;

    /// <summary>A valid QMP return line of exactly <paramref name="length"/> bytes, then <paramref name="terminator"/>.</summary>
    private static byte[] Line(int length, string terminator)
    {
        var head = "{\"return\":\""u8;
        var tail = "\"}"u8;
        Assert.That(head.Length + tail.Length, Is.EqualTo(LineOverhead));
        var bytes = new byte[length + terminator.Length];
        head.CopyTo(bytes);
        bytes.AsSpan(head.Length, length - LineOverhead).Fill((byte)'x');
        tail.CopyTo(bytes.AsSpan(length - tail.Length));
        Encoding.ASCII.GetBytes(terminator, bytes.AsSpan(length));
        return bytes;
    }

    private static byte[] Wire(string terminator, IEnumerable<string> lines)
        => Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => l + terminator)));

    private static string Compact(string json)
    {
        var output = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(output))
        {
            QmpJson.Parse(json).WriteTo(writer);
        }

        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    /// <summary>Parses every complete frame in <paramref name="buffer"/>, as the session's read loop does on one read.</summary>
    private static List<QmpMessage> ReadAll(QmpFramer framer, ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> remainder)
    {
        var messages = new List<QmpMessage>();
        var consumed = buffer.Start;
        var examined = buffer.Start;
        while (framer.TryReadMessage(buffer, ref consumed, ref examined, out var message))
        {
            messages.Add(message);
            buffer = buffer.Slice(consumed);
        }

        Assert.That(examined, Is.EqualTo(buffer.End), "a failed read examines to the end");
        remainder = buffer;
        return messages;
    }

    /// <summary>
    /// Writes <paramref name="data"/> into a pipe in writes of <paramref name="writeLength"/> bytes,
    /// and reads it back with the session's read loop (parse every frame, then advance to
    /// consumed/examined).
    /// </summary>
    private static async Task<List<QmpMessage>> ReadThroughPipeAsync(QmpFramer framer, byte[] data, int writeLength)
    {
        var pause = framer.MaximumFrameLength!.Value + writeLength;
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: pause, resumeWriterThreshold: pause / 2, useSynchronizationContext: false));
        var writing = Task.Run(async () =>
        {
            for (var offset = 0; offset < data.Length; offset += writeLength)
            {
                await pipe.Writer.WriteAsync(data.AsMemory(offset, Math.Min(writeLength, data.Length - offset)));
            }

            await pipe.Writer.CompleteAsync();
        });

        var messages = new List<QmpMessage>();
        while (true)
        {
            var result = await pipe.Reader.ReadAsync();
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = buffer.Start;
            try
            {
                while (framer.TryReadMessage(buffer, ref consumed, ref examined, out var message))
                {
                    messages.Add(message);
                    buffer = buffer.Slice(consumed);
                }

                if (result.IsCompleted)
                {
                    Assert.That(buffer.IsEmpty, Is.True, "nothing is left over at the end of the stream");
                    break;
                }
            }
            finally
            {
                pipe.Reader.AdvanceTo(consumed, examined);
            }
        }

        await pipe.Reader.CompleteAsync();
        await writing;
        return messages;
    }

    private static void AssertAreTheQemuLines(List<QmpMessage> messages)
    {
        Assert.That(messages.Select(m => m.Kind), Is.EqualTo(QemuKinds));
        Assert.That(messages.Select(m => m.ToString()), Is.EqualTo(QemuLines), "each message is its line, terminator stripped");
        Assert.That(messages[0].ToGreeting().Version.Micro, Is.EqualTo(22));
        Assert.That(messages[1].Id!.Value.GetInt32(), Is.EqualTo(1));
        Assert.That(messages[2].EventName, Is.EqualTo("STOP"));
        Assert.That(messages[3].ErrorClass, Is.EqualTo("CommandNotFound"));
        Assert.That(messages[4].ToEvent().Data!.Value.GetProperty("reason").GetString(), Is.EqualTo("host-qmp-quit"));
    }

    private static void AssertIsTheSchema(QmpMessage message)
    {
        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Return));
        var value = message.ReturnValue!.Value;
        Assert.That(value.ValueKind, Is.EqualTo(JsonValueKind.Array));
        Assert.That(value.GetArrayLength(), Is.EqualTo(SchemaEntries));
        Assert.That(value[0].GetProperty("name").GetString(), Is.EqualTo("query-status"));
        Assert.That(value[0].GetProperty("meta-type").GetString(), Is.EqualTo("command"));
        Assert.That(value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("meta-type", out _)), Is.True);
        Assert.That(message.Id!.Value.GetInt32(), Is.EqualTo(3));
    }
}
