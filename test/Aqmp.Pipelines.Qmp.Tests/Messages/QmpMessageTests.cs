using System.Buffers;
using System.Text;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Qmp.Tests.Messages;

/// <summary>
/// <see cref="QmpMessage"/>: classification of parsed JSON, the accessors of each kind, parse
/// errors and their excerpts, and the builders (which must round-trip through text).
/// </summary>
public class QmpMessageTests
{
    // Real QEMU 7.2 output (without the CRLF terminator, which the framer strips).
    private const string QemuGreeting = """{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}""";
    private const string QemuReturn = """{"return": {"status": "running", "singlestep": false, "running": true}, "id": 1}""";
    private const string QemuStopEvent = """{"timestamp": {"seconds": 1795622111, "microseconds": 740784}, "event": "STOP"}""";
    private const string QemuError = """{"id": 2, "error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}""";
    private const string QemuShutdownEvent = """{"timestamp": {"seconds": 1795622111, "microseconds": 929158}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}""";

    private const string QemuPackage = "Debian 1:7.2+dfsg-7+deb12u18+b3";

    // ----------------------------------------------------------------------------------------
    // 1. Classification and accessors
    // ----------------------------------------------------------------------------------------

    [Test]
    public void Parse_classifies_the_QEMU_greeting_as_a_greeting()
    {
        var message = QmpMessage.Parse(QemuGreeting);

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Greeting));
        Assert.That(message.Id, Is.Null);
        Assert.That(message.CommandName, Is.Null);
        Assert.That(message.ReturnValue, Is.Null);
        Assert.That(message.EventName, Is.Null);
    }

    [Test]
    public void ToGreeting_reads_the_version_package_and_capabilities_of_the_QEMU_greeting()
    {
        var greeting = QmpMessage.Parse(QemuGreeting).ToGreeting();

        Assert.That(greeting.Version, Is.EqualTo(new QmpVersion(7, 2, 22, QemuPackage)));
        Assert.That(greeting.Capabilities, Is.EqualTo(new[] { "oob" }));
        Assert.That(greeting.OffersOutOfBand, Is.True);
    }

    [Test]
    public void ToGreeting_of_a_greeting_without_capabilities_does_not_offer_out_of_band()
    {
        var greeting = QmpMessage.Parse("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 9}, "package": ""}, "capabilities": []}}""").ToGreeting();

        Assert.That(greeting.Capabilities, Is.Empty);
        Assert.That(greeting.OffersOutOfBand, Is.False);
    }

    [Test]
    public void ToGreeting_reads_a_missing_package_as_empty()
    {
        var greeting = QmpMessage.Parse("""{"QMP": {"version": {"qemu": {"micro": 1, "minor": 2, "major": 8}}, "capabilities": ["oob"]}}""").ToGreeting();

        Assert.That(greeting.Version, Is.EqualTo(new QmpVersion(8, 2, 1, string.Empty)));
    }

    [Test]
    public void QmpVersion_prints_as_major_minor_micro_with_the_package_in_parentheses_when_there_is_one()
    {
        Assert.That(new QmpVersion(7, 2, 22, QemuPackage).ToString(), Is.EqualTo("7.2.22 (" + QemuPackage + ")"));
        Assert.That(new QmpVersion(7, 2, 22, string.Empty).ToString(), Is.EqualTo("7.2.22"));
    }

    [TestCase("""{"QMP": {"version": {"package": ""}, "capabilities": []}}""", "Malformed QMP greeting version", TestName = "Parse_refuses_a_greeting_without_a_qemu_version_member")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2}, "package": ""}, "capabilities": []}}""", "Malformed QMP greeting version", TestName = "Parse_refuses_a_greeting_without_a_major_version")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": "7"}, "package": ""}, "capabilities": []}}""", "Malformed QMP greeting version", TestName = "Parse_refuses_a_greeting_whose_major_version_is_a_string")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2.5, "major": 7}, "package": ""}, "capabilities": []}}""", "Malformed QMP greeting version", TestName = "Parse_refuses_a_greeting_whose_minor_version_is_not_an_integer")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 2147483648, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}""", "Malformed QMP greeting version", TestName = "Parse_refuses_a_greeting_whose_micro_version_does_not_fit_an_int")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": null, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}""", "Malformed QMP greeting version", TestName = "Parse_refuses_a_greeting_whose_micro_version_is_null")]
    [TestCase("""{"QMP": {"version": {"qemu": 7}, "capabilities": []}}""", "Malformed QMP greeting version", TestName = "Parse_refuses_a_greeting_whose_qemu_version_is_not_an_object")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": 1}, "capabilities": []}}""", "Malformed QMP greeting version", TestName = "Parse_refuses_a_greeting_whose_package_is_not_a_string")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": [1]}}""", "Malformed QMP greeting capabilities", TestName = "Parse_refuses_a_greeting_whose_capability_is_not_a_string")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob", null]}}""", "Malformed QMP greeting capabilities", TestName = "Parse_refuses_a_greeting_whose_capability_is_null")]
    public void Parse_refuses_a_greeting_whose_version_or_capabilities_ToGreeting_could_not_read(string json, string reason)
    {
        var ex = AssertRefused(json, reason, expectedId: null);

        Assert.That(ex.Excerpt, Is.EqualTo("'" + json + "'"));
    }

    [Test]
    public void ToGreeting_never_fails_on_a_greeting_at_the_limits_of_int()
    {
        var greeting = QmpMessage.Parse("""{"QMP": {"version": {"qemu": {"micro": 2147483647, "minor": -2147483648, "major": 0}}, "capabilities": []}, "id": 1}""").ToGreeting();

        Assert.That(greeting.Version, Is.EqualTo(new QmpVersion(0, int.MinValue, int.MaxValue, string.Empty)));
    }

    [Test]
    public void ToGreeting_of_a_message_that_is_not_a_greeting_raises_InvalidOperationException()
    {
        var message = QmpMessage.Parse(QemuReturn);

        Assert.Throws<InvalidOperationException>(() => message.ToGreeting());
    }

    [Test]
    public void Parse_classifies_execute_without_arguments_or_id_as_an_in_band_command()
    {
        var message = QmpMessage.Parse("""{"execute": "query-status"}""");

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Command));
        Assert.That(message.CommandName, Is.EqualTo("query-status"));
        Assert.That(message.IsOutOfBand, Is.False);
        Assert.That(message.Arguments, Is.Null);
        Assert.That(message.Id, Is.Null);
    }

    [Test]
    public void Parse_classifies_execute_with_arguments_and_id_as_a_command_exposing_both()
    {
        var message = QmpMessage.Parse("""{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": "neg-1"}""");

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Command));
        Assert.That(message.CommandName, Is.EqualTo("qmp_capabilities"));
        Assert.That(message.IsOutOfBand, Is.False);
        AssertJsonEqual(message.Arguments, """{"enable": ["oob"]}""");
        AssertJsonEqual(message.Id, "\"neg-1\"");
    }

    [Test]
    public void Parse_classifies_exec_oob_without_arguments_as_an_out_of_band_command()
    {
        var message = QmpMessage.Parse("""{"exec-oob": "migrate-pause", "id": 7}""");

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Command));
        Assert.That(message.CommandName, Is.EqualTo("migrate-pause"));
        Assert.That(message.IsOutOfBand, Is.True);
        Assert.That(message.Arguments, Is.Null);
        Assert.That(message.Id!.Value.GetInt32(), Is.EqualTo(7));
    }

    [Test]
    public void Parse_classifies_exec_oob_with_arguments_as_an_out_of_band_command_exposing_them()
    {
        var message = QmpMessage.Parse("""{"exec-oob": "x-oob-test", "arguments": {"lock": true}, "id": {"seq": 3}}""");

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Command));
        Assert.That(message.CommandName, Is.EqualTo("x-oob-test"));
        Assert.That(message.IsOutOfBand, Is.True);
        AssertJsonEqual(message.Arguments, """{"lock": true}""");
        AssertJsonEqual(message.Id, """{"seq": 3}""");
    }

    [Test]
    public void Parse_classifies_the_QEMU_return_as_a_return_exposing_its_value_and_id()
    {
        var message = QmpMessage.Parse(QemuReturn);

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Return));
        AssertJsonEqual(message.ReturnValue, """{"status": "running", "singlestep": false, "running": true}""");
        Assert.That(message.Id!.Value.GetInt32(), Is.EqualTo(1));
        Assert.That(message.ErrorClass, Is.Null);
        Assert.That(message.ErrorDescription, Is.Null);
        Assert.That(message.CommandName, Is.Null);
        Assert.That(message.Arguments, Is.Null);
        Assert.That(message.IsOutOfBand, Is.False);
    }

    [Test]
    public void Parse_classifies_a_return_without_id_as_a_return_with_a_null_Id()
    {
        var message = QmpMessage.Parse("""{"return": {}}""");

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Return));
        AssertJsonEqual(message.ReturnValue, "{}");
        Assert.That(message.Id, Is.Null);
    }

    [Test]
    public void Parse_classifies_the_QEMU_error_as_an_error_exposing_class_description_and_id()
    {
        var message = QmpMessage.Parse(QemuError);

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Error));
        Assert.That(message.ErrorClass, Is.EqualTo("CommandNotFound"));
        Assert.That(message.ErrorDescription, Is.EqualTo("The command nosuch has not been found"));
        Assert.That(message.Id!.Value.GetInt32(), Is.EqualTo(2));
        Assert.That(message.ReturnValue, Is.Null);
        Assert.That(message.EventName, Is.Null);
    }

    [Test]
    public void Parse_classifies_the_QEMU_STOP_event_as_an_event_exposing_its_name()
    {
        var message = QmpMessage.Parse(QemuStopEvent);

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Event));
        Assert.That(message.EventName, Is.EqualTo("STOP"));
        Assert.That(message.Id, Is.Null);
        Assert.That(message.CommandName, Is.Null);
        Assert.That(message.ReturnValue, Is.Null);
        Assert.That(message.ErrorClass, Is.Null);
    }

    [Test]
    public void ToEvent_reads_the_name_and_the_timestamp_to_the_microsecond_and_no_data_when_there_is_none()
    {
        var message = QmpMessage.Parse(QemuStopEvent);

        var ev = message.ToEvent();

        Assert.That(ev.Name, Is.EqualTo("STOP"));
        Assert.That(ev.Data, Is.Null);
        Assert.That(ev.Timestamp, Is.EqualTo(DateTimeOffset.FromUnixTimeSeconds(1795622111).AddTicks(740784 * TimeSpan.TicksPerMicrosecond)));
        Assert.That(ev.Timestamp.ToUnixTimeSeconds(), Is.EqualTo(1795622111));
        Assert.That(ev.Timestamp.Millisecond, Is.EqualTo(740));
        Assert.That(ev.Timestamp.Microsecond, Is.EqualTo(784));
        Assert.That(ev.Timestamp.Nanosecond, Is.Zero);
        Assert.That(ev.Timestamp.Offset, Is.EqualTo(TimeSpan.Zero));
        Assert.That(ev.Message, Is.SameAs(message));
        Assert.That(ev.ToString(), Is.EqualTo(QemuStopEvent));
    }

    [Test]
    public void ToEvent_reads_the_data_of_the_QEMU_SHUTDOWN_event()
    {
        var ev = QmpMessage.Parse(QemuShutdownEvent).ToEvent();

        Assert.That(ev.Name, Is.EqualTo("SHUTDOWN"));
        AssertJsonEqual(ev.Data, """{"guest": false, "reason": "host-qmp-quit"}""");
        Assert.That(ev.Data!.Value.GetProperty("reason").GetString(), Is.EqualTo("host-qmp-quit"));
        Assert.That(ev.Timestamp, Is.EqualTo(DateTimeOffset.FromUnixTimeSeconds(1795622111).AddTicks(929158 * TimeSpan.TicksPerMicrosecond)));
    }

    [Test]
    public void ToEvent_of_an_event_without_timestamp_has_a_MinValue_timestamp()
    {
        var ev = QmpMessage.Parse("""{"event": "RESUME"}""").ToEvent();

        Assert.That(ev.Name, Is.EqualTo("RESUME"));
        Assert.That(ev.Timestamp, Is.EqualTo(DateTimeOffset.MinValue));
    }

    [TestCase("""{"seconds": "1795622111", "microseconds": 0}""", TestName = "ToEvent_of_an_event_whose_timestamp_seconds_are_a_string_has_a_MinValue_timestamp")]
    [TestCase("""{"seconds": 1795622111}""", TestName = "ToEvent_of_an_event_whose_timestamp_has_no_microseconds_has_a_MinValue_timestamp")]
    [TestCase("\"1795622111.740784\"", TestName = "ToEvent_of_an_event_whose_timestamp_is_not_an_object_has_a_MinValue_timestamp")]
    [TestCase("""{"seconds": 1000000000000000, "microseconds": 0}""", TestName = "ToEvent_of_an_event_whose_timestamp_seconds_are_beyond_DateTimeOffset_has_a_MinValue_timestamp")]
    [TestCase("""{"seconds": -1000000000000000, "microseconds": 0}""", TestName = "ToEvent_of_an_event_whose_timestamp_seconds_are_before_DateTimeOffset_has_a_MinValue_timestamp")]
    [TestCase("""{"seconds": 253402300799, "microseconds": 999999999999}""", TestName = "ToEvent_of_an_event_whose_timestamp_microseconds_overflow_DateTimeOffset_has_a_MinValue_timestamp")]
    public void ToEvent_of_an_event_with_an_unusable_timestamp_has_a_MinValue_timestamp(string timestamp)
    {
        var message = QmpMessage.Parse("{\"event\": \"STOP\", \"timestamp\": " + timestamp + "}");

        QmpEvent? ev = null;
        Assert.That(() => ev = message.ToEvent(), Throws.Nothing, "a peer's odd timestamp must not make ToEvent throw");

        Assert.That(ev!.Name, Is.EqualTo("STOP"));
        Assert.That(ev.Timestamp, Is.EqualTo(DateTimeOffset.MinValue));
    }

    [Test]
    public void ToEvent_of_a_message_that_is_not_an_event_raises_InvalidOperationException()
    {
        var message = QmpMessage.Parse(QemuGreeting);

        Assert.Throws<InvalidOperationException>(() => message.ToEvent());
    }

    [Test]
    public void Parse_accepts_UTF8_bytes_as_a_span_and_as_a_multi_segment_sequence_alike()
    {
        var bytes = Encoding.UTF8.GetBytes(QemuShutdownEvent);

        var fromSpan = QmpMessage.Parse(bytes.AsSpan());
        var fromSegments = QmpMessage.Parse(SegmentedSequence.OfSegmentSize(bytes, 5));

        Assert.That(fromSpan.Kind, Is.EqualTo(QmpMessageKind.Event));
        Assert.That(fromSegments.Kind, Is.EqualTo(QmpMessageKind.Event));
        AssertJsonEqual(fromSpan.Root, QemuShutdownEvent);
        AssertJsonEqual(fromSegments.Root, QemuShutdownEvent);
    }

    [Test]
    public void Parse_accepts_surrounding_whitespace_including_a_stray_carriage_return()
    {
        var message = QmpMessage.Parse("  " + QemuReturn + "\r");

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Return));
    }

    [Test]
    public void A_parsed_message_owns_its_data_after_the_source_bytes_are_overwritten()
    {
        var bytes = Encoding.UTF8.GetBytes(QemuShutdownEvent);
        var message = QmpMessage.Parse(new ReadOnlySequence<byte>(bytes));

        Array.Fill(bytes, (byte)'#');

        Assert.That(message.EventName, Is.EqualTo("SHUTDOWN"));
        Assert.That(message.ToString(), Is.EqualTo(QemuShutdownEvent));
        Assert.That(message.ToEvent().Data!.Value.GetProperty("reason").GetString(), Is.EqualTo("host-qmp-quit"));
    }

    [Test]
    public void ToString_returns_the_JSON_text_as_received()
    {
        Assert.That(QmpMessage.Parse(QemuError).ToString(), Is.EqualTo(QemuError));
    }

    [Test]
    public void FromJson_classifies_a_JSON_element_like_Parse()
    {
        var message = QmpMessage.FromJson(QmpJson.Parse(QemuError));

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Error));
        Assert.That(message.ErrorClass, Is.EqualTo("CommandNotFound"));
    }

    // ----------------------------------------------------------------------------------------
    // 2. Parse errors
    // ----------------------------------------------------------------------------------------

    [Test]
    public void Parse_of_malformed_JSON_raises_QmpParseException_quoting_the_line()
        => AssertParseFails("""{"return": {"status": running}}""");

    [Test]
    public void Parse_of_truncated_JSON_raises_QmpParseException_quoting_the_line()
        => AssertParseFails("""{"return": {"status": "runn""");

    [Test]
    public void Parse_of_an_empty_line_raises_QmpParseException()
        => AssertParseFails(string.Empty);

    [Test]
    public void Parse_of_an_object_followed_by_another_object_raises_QmpParseException()
        => AssertParseFails("""{"return": {}} {"return": {}}""");

    [Test]
    public void Parse_of_an_object_followed_by_trailing_garbage_raises_QmpParseException()
        => AssertParseFails("""{"return": {}} x""");

    [Test]
    public void Parse_of_an_object_followed_by_a_number_raises_QmpParseException()
        => AssertParseFails("""{"return": {}} 1""");

    [Test]
    public void Parse_of_a_JSON_array_raises_QmpParseException()
        => AssertParseFails("""[{"return": {}}]""");

    [Test]
    public void Parse_of_a_JSON_number_raises_QmpParseException()
        => AssertParseFails("42");

    [Test]
    public void Parse_of_a_JSON_string_raises_QmpParseException()
        => AssertParseFails("\"STOP\"");

    [Test]
    public void Parse_of_JSON_null_raises_QmpParseException()
        => AssertParseFails("null");

    [Test]
    public void Parse_of_an_empty_object_raises_QmpParseException()
        => AssertParseFails("{}");

    [Test]
    public void Parse_of_an_object_that_is_no_QMP_kind_raises_QmpParseException()
        => AssertParseFails("""{"status": "running", "id": 1}""");

    [Test]
    public void Parse_of_an_object_whose_execute_is_not_a_string_raises_QmpParseException()
        => AssertParseFails("""{"execute": 5}""");

    [Test]
    public void Parse_of_an_object_whose_event_is_not_a_string_raises_QmpParseException()
        => AssertParseFails("""{"event": {"name": "STOP"}}""");

    [TestCase("""{"QMP": 1}""", TestName = "Parse_of_a_greeting_whose_QMP_member_is_not_an_object_raises_QmpParseException")]
    [TestCase("""{"QMP": {"capabilities": []}}""", TestName = "Parse_of_a_greeting_without_version_raises_QmpParseException")]
    [TestCase("""{"QMP": {"version": "7.2.22", "capabilities": []}}""", TestName = "Parse_of_a_greeting_whose_version_is_not_an_object_raises_QmpParseException")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}}}""", TestName = "Parse_of_a_greeting_without_capabilities_raises_QmpParseException")]
    [TestCase("""{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": "oob"}}""", TestName = "Parse_of_a_greeting_whose_capabilities_are_not_an_array_raises_QmpParseException")]
    public void Parse_of_a_malformed_greeting_raises_QmpParseException(string json)
        => AssertParseFails(json);

    [TestCase("""{"id": 2, "error": {"desc": "The command nosuch has not been found"}}""", TestName = "Parse_of_an_error_reply_without_class_raises_QmpParseException")]
    [TestCase("""{"id": 2, "error": {"class": "CommandNotFound"}}""", TestName = "Parse_of_an_error_reply_without_desc_raises_QmpParseException")]
    [TestCase("""{"id": 2, "error": {"class": 1, "desc": "x"}}""", TestName = "Parse_of_an_error_reply_whose_class_is_not_a_string_raises_QmpParseException")]
    [TestCase("""{"id": 2, "error": "CommandNotFound"}""", TestName = "Parse_of_an_error_reply_whose_error_is_not_an_object_raises_QmpParseException")]
    public void Parse_of_a_malformed_error_reply_raises_QmpParseException(string json)
        => AssertParseFails(json);

    [TestCase("""{"execute": "cont", "arguments": [1, 2]}""", TestName = "Parse_of_a_command_whose_arguments_are_an_array_raises_QmpParseException")]
    [TestCase("""{"execute": "cont", "arguments": "none"}""", TestName = "Parse_of_a_command_whose_arguments_are_a_string_raises_QmpParseException")]
    [TestCase("""{"exec-oob": "cont", "arguments": 0}""", TestName = "Parse_of_an_out_of_band_command_whose_arguments_are_a_number_raises_QmpParseException")]
    public void Parse_of_a_command_with_non_object_arguments_raises_QmpParseException(string json)
        => AssertParseFails(json);

    // Commands are checked member by member as QEMU 7.2 does (qmp_dispatch_check_obj), with its error texts.
    [TestCase("""{"exec-oob": "x", "execute": 5}""", "QMP input member 'execute' must be a string", null, TestName = "Parse_refuses_exec_oob_beside_a_numeric_execute_as_execute_not_a_string")]
    [TestCase("""{"exec-oob": "query-status", "execute": null}""", "QMP input member 'execute' must be a string", null, TestName = "Parse_refuses_exec_oob_beside_a_null_execute_as_execute_not_a_string")]
    [TestCase("""{"execute": 5, "id": 7}""", "QMP input member 'execute' must be a string", "7", TestName = "Parse_refuses_a_numeric_execute_keeping_the_id")]
    [TestCase("""{"id": "a", "exec-oob": ["x"]}""", "QMP input member 'exec-oob' must be a string", "\"a\"", TestName = "Parse_refuses_an_array_exec_oob_keeping_the_id")]
    [TestCase("""{"execute": "a", "exec-oob": "b"}""", "QMP input member 'exec-oob' is unexpected", null, TestName = "Parse_refuses_execute_then_exec_oob_naming_exec_oob")]
    [TestCase("""{"exec-oob": "a", "id": {"n": [1]}, "execute": "b"}""", "QMP input member 'execute' is unexpected", "{\"n\": [1]}", TestName = "Parse_refuses_exec_oob_then_execute_naming_execute_and_keeping_an_object_id")]
    [TestCase("""{"execute": "a", "exec-oob": 1}""", "QMP input member 'exec-oob' must be a string", null, TestName = "Parse_refuses_a_second_command_member_that_is_not_a_string_as_not_a_string")]
    [TestCase("""{"execute": "cont", "arguments": [1, 2], "id": null}""", "QMP input member 'arguments' must be an object", "null", TestName = "Parse_refuses_array_arguments_with_QEMUs_words_keeping_a_null_id")]
    [TestCase("""{"arguments": null, "exec-oob": "cont"}""", "QMP input member 'arguments' must be an object", null, TestName = "Parse_refuses_null_arguments_even_before_the_command_name")]
    [TestCase("""{"execute": "cont", "extra": 1, "id": 3}""", "QMP input member 'extra' is unexpected", "3", TestName = "Parse_refuses_an_unknown_member_of_a_command_naming_it")]
    [TestCase("""{"return": {}, "execute": "x"}""", "QMP input member 'return' is unexpected", null, TestName = "Parse_refuses_a_return_that_also_has_execute_as_a_command_with_an_unexpected_return")]
    [TestCase("""{"id": 1, "ünïcode": 2, "execute": 5}""", "QMP input member 'ünïcode' is unexpected", "1", TestName = "Parse_refuses_a_command_at_its_first_offending_member_in_document_order")]
    [TestCase("""{"execute": "cont", "QMP": {}}""", "Malformed QMP greeting", null, TestName = "Parse_classifies_an_object_with_a_QMP_member_as_a_greeting_before_a_command")]
    public void Parse_refuses_a_command_that_QEMU_would_refuse_with_its_words(string json, string reason, string? id)
        => AssertRefused(json, reason, id);

    [TestCase("[1, 2]", TestName = "Parse_refuses_a_JSON_array_as_not_a_JSON_object")]
    [TestCase("42", TestName = "Parse_refuses_a_JSON_number_as_not_a_JSON_object")]
    [TestCase("\"execute\"", TestName = "Parse_refuses_a_JSON_string_as_not_a_JSON_object")]
    [TestCase("null", TestName = "Parse_refuses_JSON_null_as_not_a_JSON_object")]
    public void Parse_refuses_a_JSON_value_that_is_not_an_object_with_QEMUs_words(string json)
        => AssertRefused(json, "QMP input must be a JSON object", expectedId: null);

    [TestCase("""{"error": 1, "id": [true]}""", "Malformed QMP error reply", "[true]", TestName = "Parse_refuses_a_malformed_error_reply_keeping_its_id")]
    [TestCase("""{"id": "x", "status": "running"}""", "JSON object is neither a QMP greeting, command, reply nor event", "\"x\"", TestName = "Parse_refuses_an_object_of_no_QMP_kind_keeping_its_id")]
    public void Parse_refuses_an_object_that_is_no_QMP_message_keeping_its_id(string json, string reason, string? id)
        => AssertRefused(json, reason, id);

    [TestCase("""{"execute": "cont\ud800", "id": 1}""", TestName = "Parse_refuses_an_unpaired_high_surrogate_escape_in_a_command_name_as_malformed_text")]
    [TestCase("""{"event": "STOP", "\udc00": 1}""", TestName = "Parse_refuses_an_unpaired_low_surrogate_escape_in_a_member_name_as_malformed_text")]
    [TestCase("""{"return": ["\ud83d\u0041"], "id": 1}""", TestName = "Parse_refuses_a_high_surrogate_escape_followed_by_no_low_surrogate_as_malformed_text")]
    public void Parse_refuses_unpaired_surrogate_escapes_that_no_accessor_could_read(string json)
    {
        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(json))!;

        Assert.That(ex.Reason, Is.EqualTo("Unpaired UTF-16 surrogate escape in JSON text"));
        Assert.That(ex.Id, Is.Null, "text that is not valid carries no id");
        Assert.That(ex.IsWellFormedJson, Is.False);
    }

    [Test]
    public void Parse_accepts_paired_surrogate_escapes_and_an_escaped_backslash_before_u_d800()
    {
        var message = QmpMessage.Parse("""{"event": "\ud83d\ude00", "data": "\\ud800"}""");

        Assert.That(message.EventName, Is.EqualTo("\U0001F600"));
        Assert.That(message.ToEvent().Data!.Value.GetString(), Is.EqualTo("\\ud800"));
    }

    [Test]
    public void FromJson_keeps_a_copy_of_the_refused_objects_id_that_outlives_its_document()
    {
        QmpParseException ex;
        using (var document = JsonDocument.Parse("""{"execute": "cont", "arguments": 1, "id": {"seq": 9}}"""))
        {
            ex = Assert.Throws<QmpParseException>(() => QmpMessage.FromJson(document.RootElement))!;
        }

        Assert.That(ex.Reason, Is.EqualTo("QMP input member 'arguments' must be an object"));
        AssertJsonEqual(ex.Id, """{"seq": 9}""");
    }

    [Test]
    public void Malformed_JSON_and_invalid_UTF8_carry_no_id()
    {
        Assert.That(Assert.Throws<QmpParseException>(() => QmpMessage.Parse("""{"execute": 5, "id": 1"""))!.Id, Is.Null);
        var invalidUtf8 = Encoding.Latin1.GetBytes("{\"execute\": \"\u00FF\", \"id\": 1}");
        Assert.That(Assert.Throws<QmpParseException>(() => QmpMessage.Parse(new ReadOnlySequence<byte>(invalidUtf8)))!.Id, Is.Null);
    }

    [Test]
    public void QmpParseException_made_without_an_id_has_a_null_Id_and_with_one_a_copy_of_it()
    {
        var withoutId = new QmpParseException("reason", "'x'");
        var withUndefined = new QmpParseException("reason", "'x'", default(JsonElement));
        JsonElement? id;
        QmpParseException withId;
        using (var document = JsonDocument.Parse("[\"req-1\"]"))
        {
            id = document.RootElement[0];
            withId = new QmpParseException("reason", "'x'", id, new FormatException());
        }

        Assert.That(withoutId.Id, Is.Null);
        Assert.That(withUndefined.Id, Is.Null);
        Assert.That(withId.Id!.Value.GetString(), Is.EqualTo("req-1"));
        Assert.That(withId.InnerException, Is.InstanceOf<FormatException>());
        Assert.That(withId.Message, Is.EqualTo("reason: 'x'"));
    }

    // Invalid UTF-8: the test strings are mapped to bytes one char per byte (Latin-1), so '\u00FF'
    // stands for the raw byte 0xFF; the excerpt shows each bad byte as U+FFFD.
    [TestCase("{\"event\": \"ST\u00FF\u00FEOP\"}", "{\"event\": \"ST\uFFFD\uFFFDOP\"}", TestName = "Parse_of_invalid_UTF8_in_an_event_name_raises_QmpParseException_showing_the_bad_bytes_as_U+FFFD")]
    [TestCase("{\"return\": \"caf\u00E9\", \"id\": 1}", "{\"return\": \"caf\uFFFD\", \"id\": 1}", TestName = "Parse_of_a_Latin1_byte_in_a_return_value_raises_QmpParseException_showing_it_as_U+FFFD")]
    [TestCase("{\"execute\": \"cont\", \"id\": \"a\u00C0\u0080\"}", "{\"execute\": \"cont\", \"id\": \"a\uFFFD\uFFFD\"}", TestName = "Parse_of_an_overlong_UTF8_sequence_in_a_command_id_raises_QmpParseException_showing_it_as_U+FFFD")]
    [TestCase("{\"ev\u00FFent\": \"STOP\"}", "{\"ev\uFFFDent\": \"STOP\"}", TestName = "Parse_of_invalid_UTF8_in_a_member_name_raises_QmpParseException_showing_the_bad_byte_as_U+FFFD")]
    [TestCase("{\"unknown\": \"\u00FF\"}", "{\"unknown\": \"\uFFFD\"}", TestName = "Parse_of_invalid_UTF8_in_an_object_that_is_no_QMP_kind_raises_QmpParseException_showing_the_bad_byte_as_U+FFFD")]
    [TestCase("{\"event\": \"STOP\"}\u00C3", "{\"event\": \"STOP\"}\uFFFD", TestName = "Parse_of_invalid_UTF8_after_the_object_raises_QmpParseException_showing_the_bad_byte_as_U+FFFD")]
    public void Parse_of_invalid_UTF8_raises_QmpParseException(string latin1, string expectedExcerpt)
    {
        var bytes = Encoding.Latin1.GetBytes(latin1);

        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(new ReadOnlySequence<byte>(bytes)))!;

        Assert.That(ex.Excerpt, Is.EqualTo("'" + expectedExcerpt + "'"));
        Assert.That(ex.Message, Does.Contain(ex.Excerpt));
    }

    [Test]
    public void Parse_of_JSON_nested_deeper_than_128_levels_raises_QmpParseException()
    {
        var json = "{\"return\": " + new string('[', 200) + new string(']', 200) + "}";

        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(json))!;

        Assert.That(ex.InnerException, Is.InstanceOf<JsonException>());
    }

    [Test]
    public void Parse_of_malformed_JSON_keeps_the_parser_error_as_the_inner_exception()
    {
        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse("{\"return\": }"))!;

        Assert.That(ex.InnerException, Is.InstanceOf<JsonException>());
        Assert.That(ex.Reason, Does.StartWith("Malformed JSON"));
    }

    [Test]
    public void Parse_of_malformed_JSON_split_across_segments_quotes_the_whole_line()
    {
        const string Json = """{"return": {"status": running}}""";

        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(SegmentedSequence.OfSegmentSize(Encoding.UTF8.GetBytes(Json), 3)))!;

        Assert.That(ex.Excerpt, Is.EqualTo("'" + Json + "'"));
    }

    [Test]
    public void A_QmpParseException_is_a_ProtocolException_whose_message_is_the_reason_then_the_excerpt()
    {
        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse("{}"))!;

        Assert.That(ex, Is.InstanceOf<ProtocolException>());
        Assert.That(ex.Reason, Is.Not.Empty);
        Assert.That(ex.Message, Is.EqualTo(ex.Reason + ": " + ex.Excerpt));
    }

    [Test]
    public void The_excerpt_of_a_bad_line_of_exactly_MaximumExcerptLength_bytes_is_not_clipped()
    {
        var json = PadTo("{\"return\": \"", QmpParseException.MaximumExcerptLength);

        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(json))!;

        Assert.That(ex.Excerpt, Is.EqualTo("'" + json + "'"));
    }

    [Test]
    public void The_excerpt_of_a_very_long_malformed_line_is_clipped_to_MaximumExcerptLength_then_an_ellipsis()
    {
        var json = PadTo("{\"return\": \"", 100_000);

        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(json))!;

        AssertClipped(ex, json);
    }

    [Test]
    public void The_excerpt_of_a_bad_line_one_byte_over_MaximumExcerptLength_is_clipped()
    {
        var json = PadTo("{\"return\": \"", QmpParseException.MaximumExcerptLength + 1);

        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(json))!;

        AssertClipped(ex, json);
    }

    [Test]
    public void The_excerpt_of_a_very_long_object_that_is_no_QMP_kind_is_clipped_to_MaximumExcerptLength_then_an_ellipsis()
    {
        var json = "{\"unknown\": \"" + new string('x', 5_000) + "\"}";

        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(json))!;

        AssertClipped(ex, json);
    }

    [Test]
    public void The_excerpt_of_a_very_long_malformed_line_split_across_segments_is_clipped()
    {
        var json = PadTo("{\"return\": \"", 10_000);

        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(SegmentedSequence.OfSegmentSize(Encoding.UTF8.GetBytes(json), 7)))!;

        AssertClipped(ex, json);
    }

    [Test]
    public void QmpParseException_Clip_quotes_short_text_whole_and_clips_long_text()
    {
        Assert.That(QmpParseException.Clip("abc"), Is.EqualTo("'abc'"));
        Assert.That(QmpParseException.Clip(new ReadOnlySequence<byte>("abc"u8.ToArray())), Is.EqualTo("'abc'"));

        var longText = new string('y', 500);
        var expected = "'" + new string('y', QmpParseException.MaximumExcerptLength) + "'…";
        Assert.That(QmpParseException.Clip(longText), Is.EqualTo(expected));
        Assert.That(QmpParseException.Clip(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(longText))), Is.EqualTo(expected));
    }

    // ----------------------------------------------------------------------------------------
    // 3. Builders
    // ----------------------------------------------------------------------------------------

    [Test]
    public void Command_without_arguments_or_id_builds_a_bare_execute()
    {
        var message = QmpMessage.Command("query-status");

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Command));
        Assert.That(message.ToString(), Is.EqualTo("""{"execute":"query-status"}"""));
        Assert.That(message.CommandName, Is.EqualTo("query-status"));
        Assert.That(message.IsOutOfBand, Is.False);
        Assert.That(message.Arguments, Is.Null);
        Assert.That(message.Id, Is.Null);
        AssertRoundTrips(message);
    }

    [Test]
    public void Command_with_arguments_and_id_builds_an_execute_carrying_both()
    {
        var arguments = QmpJson.Parse("""{"device": "virtio-disk0", "force": true}""");

        var message = QmpMessage.Command("eject", arguments, QmpJson.Number(42));

        AssertJsonEqual(message.Root, """{"execute": "eject", "arguments": {"device": "virtio-disk0", "force": true}, "id": 42}""");
        Assert.That(message.CommandName, Is.EqualTo("eject"));
        AssertJsonEqual(message.Arguments, """{"device": "virtio-disk0", "force": true}""");
        Assert.That(message.Id!.Value.GetInt64(), Is.EqualTo(42));
        AssertRoundTrips(message);
    }

    [Test]
    public void Command_out_of_band_builds_an_exec_oob()
    {
        var message = QmpMessage.Command("migrate-pause", id: QmpJson.String("oob-1"), outOfBand: true);

        AssertJsonEqual(message.Root, """{"exec-oob": "migrate-pause", "id": "oob-1"}""");
        Assert.That(message.IsOutOfBand, Is.True);
        Assert.That(message.CommandName, Is.EqualTo("migrate-pause"));
        AssertRoundTrips(message);
    }

    [Test]
    public void Command_treats_a_JSON_null_or_undefined_arguments_value_as_no_arguments()
    {
        var withNull = QmpMessage.Command("cont", QmpJson.Parse("null"));
        var withUndefined = QmpMessage.Command("cont", default(JsonElement));

        Assert.That(withNull.ToString(), Is.EqualTo("""{"execute":"cont"}"""));
        Assert.That(withUndefined.ToString(), Is.EqualTo("""{"execute":"cont"}"""));
    }

    [TestCase("[1, 2]", TestName = "Command_rejects_arguments_that_are_an_array")]
    [TestCase("\"device\"", TestName = "Command_rejects_arguments_that_are_a_string")]
    [TestCase("3", TestName = "Command_rejects_arguments_that_are_a_number")]
    [TestCase("true", TestName = "Command_rejects_arguments_that_are_a_boolean")]
    public void Command_rejects_non_object_arguments(string arguments)
    {
        var ex = Assert.Throws<ArgumentException>(() => QmpMessage.Command("eject", QmpJson.Parse(arguments)))!;

        Assert.That(ex.ParamName, Is.EqualTo("arguments"));
    }

    [Test]
    public void Command_rejects_an_empty_or_null_name()
    {
        Assert.Throws<ArgumentException>(() => QmpMessage.Command(string.Empty));
        Assert.Throws<ArgumentNullException>(() => QmpMessage.Command(null!));
    }

    [Test]
    public void Return_with_a_null_value_builds_an_empty_object_return()
    {
        var message = QmpMessage.Return(null, QmpJson.Number(1));

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Return));
        Assert.That(message.ToString(), Is.EqualTo("""{"return":{},"id":1}"""));
        AssertJsonEqual(message.ReturnValue, "{}");
        AssertRoundTrips(message);
    }

    [Test]
    public void Return_without_id_builds_a_return_without_id_member()
    {
        var message = QmpMessage.Return(null, null);

        Assert.That(message.ToString(), Is.EqualTo("""{"return":{}}"""));
        Assert.That(message.Id, Is.Null);
        AssertRoundTrips(message);
    }

    [Test]
    public void Return_with_a_value_builds_the_QEMU_return()
    {
        var message = QmpMessage.Return(QmpJson.Parse("""{"status": "running", "singlestep": false, "running": true}"""), QmpJson.Number(1));

        AssertJsonEqual(message.Root, QemuReturn);
        AssertRoundTrips(message);
    }

    [Test]
    public void Return_keeps_a_non_object_value_such_as_an_array_or_a_JSON_null()
    {
        var array = QmpMessage.Return(QmpJson.Parse("""[{"name": "query-status"}, 2]"""), QmpJson.String("a"));
        var jsonNull = QmpMessage.Return(QmpJson.Parse("null"), null);

        AssertJsonEqual(array.Root, """{"return": [{"name": "query-status"}, 2], "id": "a"}""");
        Assert.That(jsonNull.ToString(), Is.EqualTo("""{"return":null}"""));
        Assert.That(jsonNull.ReturnValue!.Value.ValueKind, Is.EqualTo(JsonValueKind.Null));
        AssertRoundTrips(array);
        AssertRoundTrips(jsonNull);
    }

    [Test]
    public void Error_builds_the_QEMU_error_reply()
    {
        var message = QmpMessage.Error("CommandNotFound", "The command nosuch has not been found", QmpJson.Number(2));

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Error));
        AssertJsonEqual(message.Root, QemuError);
        Assert.That(message.ErrorClass, Is.EqualTo("CommandNotFound"));
        Assert.That(message.ErrorDescription, Is.EqualTo("The command nosuch has not been found"));
        AssertRoundTrips(message);
    }

    [Test]
    public void Error_without_id_builds_an_error_reply_without_id_member()
    {
        var message = QmpMessage.Error("GenericError", "JSON parse error, \"quoted\"\nnewline", null);

        Assert.That(message.Id, Is.Null);
        Assert.That(message.ErrorDescription, Is.EqualTo("JSON parse error, \"quoted\"\nnewline"));
        AssertRoundTrips(message);
    }

    [Test]
    public void Event_builds_the_QEMU_SHUTDOWN_event_with_timestamp_seconds_and_microseconds()
    {
        var timestamp = DateTimeOffset.FromUnixTimeSeconds(1795622111).AddTicks(929158 * TimeSpan.TicksPerMicrosecond);

        var message = QmpMessage.Event("SHUTDOWN", QmpJson.Parse("""{"guest": false, "reason": "host-qmp-quit"}"""), timestamp);

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Event));
        AssertJsonEqual(message.Root, QemuShutdownEvent);
        var ev = message.ToEvent();
        Assert.That(ev.Timestamp, Is.EqualTo(timestamp));
        AssertRoundTrips(message);
    }

    [Test]
    public void Event_without_data_builds_an_event_without_data_member()
    {
        var timestamp = DateTimeOffset.FromUnixTimeSeconds(1795622111).AddTicks(740784 * TimeSpan.TicksPerMicrosecond);

        var message = QmpMessage.Event("STOP", null, timestamp);

        AssertJsonEqual(message.Root, QemuStopEvent);
        Assert.That(message.ToEvent().Data, Is.Null);
        AssertRoundTrips(message);
    }

    [Test]
    public void Event_truncates_the_timestamp_to_the_microsecond()
    {
        var timestamp = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000).AddTicks(123_456_7);

        var message = QmpMessage.Event("RESUME", null, timestamp);

        var ts = message.Root.GetProperty("timestamp");
        Assert.That(ts.GetProperty("seconds").GetInt64(), Is.EqualTo(1_700_000_000));
        Assert.That(ts.GetProperty("microseconds").GetInt64(), Is.EqualTo(123_456));
        Assert.That(message.ToEvent().Timestamp, Is.EqualTo(timestamp.AddTicks(-7)));
    }

    [Test]
    public void Event_writes_a_timestamp_with_an_offset_as_the_same_instant_since_the_Unix_epoch()
    {
        var utc = DateTimeOffset.FromUnixTimeSeconds(1795622111).AddTicks(740784 * TimeSpan.TicksPerMicrosecond);
        var local = utc.ToOffset(TimeSpan.FromHours(2));

        var message = QmpMessage.Event("STOP", null, local);

        AssertJsonEqual(message.Root, QemuStopEvent);
        Assert.That(message.ToEvent().Timestamp, Is.EqualTo(local));
    }

    [Test]
    public void Greeting_builds_the_QEMU_greeting()
    {
        var message = QmpMessage.Greeting(new QmpVersion(7, 2, 22, QemuPackage), [QmpCapabilities.OutOfBand]);

        Assert.That(message.Kind, Is.EqualTo(QmpMessageKind.Greeting));
        AssertJsonEqual(message.Root, QemuGreeting);
        AssertRoundTrips(message);
        var greeting = QmpMessage.Parse(message.ToString()).ToGreeting();
        Assert.That(greeting.Version, Is.EqualTo(new QmpVersion(7, 2, 22, QemuPackage)));
        Assert.That(greeting.OffersOutOfBand, Is.True);
    }

    [Test]
    public void Greeting_without_capabilities_builds_an_empty_capabilities_array()
    {
        var message = QmpMessage.Greeting(new QmpVersion(9, 0, 0, string.Empty), []);

        AssertJsonEqual(message.Root, """{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 9}, "package": ""}, "capabilities": []}}""");
        Assert.That(message.ToGreeting().OffersOutOfBand, Is.False);
        AssertRoundTrips(message);
    }

    [Test]
    public void WithId_replaces_the_id_and_keeps_every_other_member()
    {
        var original = QmpMessage.Command("eject", QmpJson.Parse("""{"device": "cd0"}"""), QmpJson.Number(1), outOfBand: true);

        var renumbered = original.WithId(QmpJson.Number(99));

        Assert.That(renumbered.Kind, Is.EqualTo(QmpMessageKind.Command));
        AssertJsonEqual(renumbered.Root, """{"exec-oob": "eject", "arguments": {"device": "cd0"}, "id": 99}""");
        Assert.That(CountMembers(renumbered.Root, "id"), Is.EqualTo(1));
        AssertRoundTrips(renumbered);
    }

    [Test]
    public void WithId_adds_an_id_to_a_message_without_one()
    {
        var original = QmpMessage.Parse("""{"execute": "query-status"}""");

        var withId = original.WithId(QmpJson.String("req-7"));

        AssertJsonEqual(withId.Root, """{"execute": "query-status", "id": "req-7"}""");
        Assert.That(withId.Id!.Value.GetString(), Is.EqualTo("req-7"));
        AssertRoundTrips(withId);
    }

    [Test]
    public void WithId_replaces_the_id_of_a_parsed_QEMU_error_reply()
    {
        var withId = QmpMessage.Parse(QemuError).WithId(QmpJson.Parse("""{"client": 3}"""));

        Assert.That(withId.Kind, Is.EqualTo(QmpMessageKind.Error));
        AssertJsonEqual(withId.Root, """{"id": {"client": 3}, "error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}""");
        Assert.That(CountMembers(withId.Root, "id"), Is.EqualTo(1));
    }

    [Test]
    public void WithId_leaves_the_original_message_unchanged()
    {
        var original = QmpMessage.Parse(QemuReturn);

        _ = original.WithId(QmpJson.Number(5));

        Assert.That(original.ToString(), Is.EqualTo(QemuReturn));
        Assert.That(original.Id!.Value.GetInt32(), Is.EqualTo(1));
    }

    [Test]
    public void QmpJson_helpers_build_standalone_values()
    {
        Assert.That(QmpJson.Number(long.MinValue).GetInt64(), Is.EqualTo(long.MinValue));
        Assert.That(QmpJson.Number(0).GetRawText(), Is.EqualTo("0"));
        Assert.That(QmpJson.String("a\"b\nc").GetString(), Is.EqualTo("a\"b\nc"));
        Assert.That(QmpJson.Write(w => w.WriteBooleanValue(true)).ValueKind, Is.EqualTo(JsonValueKind.True));
        Assert.Catch<JsonException>(() => QmpJson.Parse("{"));
    }

    // ----------------------------------------------------------------------------------------
    // Helpers
    // ----------------------------------------------------------------------------------------

    private static void AssertParseFails(string json)
    {
        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(json))!;

        Assert.That(ex.Excerpt, Is.EqualTo("'" + json + "'"), "the excerpt quotes the whole (short) line");
        Assert.That(ex.Reason, Is.Not.Empty);
        Assert.That(ex.Message, Does.Contain(ex.Excerpt));
    }

    private static QmpParseException AssertRefused(string json, string expectedReason, string? expectedId)
    {
        var ex = Assert.Throws<QmpParseException>(() => QmpMessage.Parse(json))!;

        Assert.That(ex.Reason, Is.EqualTo(expectedReason));
        Assert.That(ex.Excerpt, Is.EqualTo("'" + json + "'"));
        Assert.That(ex.IsWellFormedJson, Is.True, "well-formed JSON refused by QMP's rules");
        if (expectedId is null)
        {
            Assert.That(ex.Id, Is.Null);
        }
        else
        {
            AssertJsonEqual(ex.Id, expectedId);
        }

        return ex;
    }

    private static void AssertClipped(QmpParseException ex, string json)
    {
        var max = QmpParseException.MaximumExcerptLength;
        Assert.That(ex.Excerpt, Does.StartWith("'"));
        Assert.That(ex.Excerpt, Does.EndWith("'…"));
        Assert.That(ex.Excerpt.Length - 3, Is.LessThanOrEqualTo(max), "at most MaximumExcerptLength characters are quoted");
        Assert.That(ex.Excerpt, Is.EqualTo("'" + json[..max] + "'…"));
        Assert.That(ex.Message.Length, Is.LessThan(max + 300), "the message does not carry the whole line");
    }

    /// <summary>A string starting with <paramref name="prefix"/> padded with 'x' to exactly <paramref name="length"/> characters.</summary>
    private static string PadTo(string prefix, int length) => prefix + new string('x', length - prefix.Length);

    private static void AssertRoundTrips(QmpMessage message)
    {
        var text = message.ToString();
        var parsed = QmpMessage.Parse(text);

        Assert.That(parsed.Kind, Is.EqualTo(message.Kind));
        AssertJsonEqual(parsed.Root, message.Root);
        Assert.That(text, Does.Not.Contain("\n"), "a message's text is one line");
    }

    private static void AssertJsonEqual(JsonElement? actual, string expected) => AssertJsonEqual(actual, QmpJson.Parse(expected));

    private static void AssertJsonEqual(JsonElement? actual, JsonElement expected)
    {
        Assert.That(actual, Is.Not.Null);
        Assert.That(
            JsonElement.DeepEquals(actual!.Value, expected),
            Is.True,
            () => $"expected {expected.GetRawText()} but was {actual.Value.GetRawText()}");
    }

    private static int CountMembers(JsonElement obj, string name) => obj.EnumerateObject().Count(p => p.NameEquals(name));
}
