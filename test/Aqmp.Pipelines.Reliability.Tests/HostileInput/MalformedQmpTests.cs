using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.HostileInput;

/// <summary>
/// What a <see cref="QmpClient"/> does with each line a hostile server may send mid-session, over a
/// real Unix socket, while an execute is pending. Every line is either <b>fatal</b> — the session
/// ends with a <see cref="QmpParseException"/> (truncated or malformed JSON, JSON that is not an
/// object, an object that is no QMP message, a reply without an id), the pending execute raises
/// <see cref="QmpExecuteInterruptedException"/> carrying it, <c>DisconnectAsync</c> raises it, the
/// peer sees the connection closed — or <b>tolerated</b> — dropped or delivered as documented
/// (QMP says to drop replies with unknown ids; unknown members are ignored), the pending execute
/// still gets its own reply and the next execute works.
/// </summary>
public sealed class MalformedQmpTests
{
    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [TestCase("""{"return":{},"id":1""", "Malformed JSON", TestName = "Fatal_a_truncated_JSON_object")]
    [TestCase("""{"event":"STOP","timestamp":{"seconds":1""", "Malformed JSON", TestName = "Fatal_a_truncated_event")]
    [TestCase("""{"return":"unterminated""", "Malformed JSON", TestName = "Fatal_an_unterminated_string")]
    [TestCase("{", "Malformed JSON", TestName = "Fatal_a_lone_opening_brace")]
    [TestCase("}", "Malformed JSON", TestName = "Fatal_a_lone_closing_brace")]
    [TestCase("", "Malformed JSON", TestName = "Fatal_an_empty_line")]
    [TestCase("   ", "Malformed JSON", TestName = "Fatal_a_line_of_blanks")]
    [TestCase("""{"return":{},"id":1}{"return":{},"id":2}""", "Malformed JSON", TestName = "Fatal_two_JSON_objects_on_one_line")]
    [TestCase("""{"return":{},"id":1} x""", "Malformed JSON", TestName = "Fatal_trailing_garbage_after_the_object")]
    [TestCase("""{"return":{} /* hi */,"id":1}""", "Malformed JSON", TestName = "Fatal_a_comment_in_the_JSON")]
    [TestCase("""{"return":NaN,"id":1}""", "Malformed JSON", TestName = "Fatal_a_NaN_literal")]
    [TestCase("""{'return':{},'id':1}""", "Malformed JSON", TestName = "Fatal_single_quoted_JSON")]
    [TestCase("[1,2]", "must be a JSON object", TestName = "Fatal_a_JSON_array")]
    [TestCase("42", "must be a JSON object", TestName = "Fatal_a_JSON_number")]
    [TestCase("\"text\"", "must be a JSON object", TestName = "Fatal_a_JSON_string")]
    [TestCase("null", "must be a JSON object", TestName = "Fatal_JSON_null")]
    [TestCase("true", "must be a JSON object", TestName = "Fatal_JSON_true")]
    [TestCase("{}", "neither a QMP greeting, command, reply nor event", TestName = "Fatal_an_empty_object")]
    [TestCase("""{"foo":1}""", "neither a QMP greeting, command, reply nor event", TestName = "Fatal_an_object_with_only_unknown_members")]
    [TestCase("""{"event":42}""", "neither a QMP greeting, command, reply nor event", TestName = "Fatal_an_event_whose_name_is_not_a_string")]
    [TestCase("""{"error":"boom","id":1}""", "Malformed QMP error reply", TestName = "Fatal_an_error_reply_whose_error_is_not_an_object")]
    [TestCase("""{"error":{"class":"GenericError"},"id":1}""", "Malformed QMP error reply", TestName = "Fatal_an_error_reply_without_desc")]
    [TestCase("""{"execute":"stop","arguments":[1],"id":1}""", "QMP input member 'arguments' must be an object", TestName = "Fatal_a_command_with_array_arguments")]
    [TestCase("""{"return":{}}""", "without an id", TestName = "Fatal_a_return_without_an_id_while_the_client_waits_for_one")]
    public async Task A_fatal_line_ends_the_session_with_QmpParseException(string line, string reason)
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        using var peer = await listener.ConnectQmpAsync(client);
        var execute = client.ExecuteAsync("query-status");
        await peer.ReadCommandAsync();

        await peer.SendLinesAsync(line).Bounded();

        var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Disconnecting), "the session ended by itself");
        var error = await Assert.ThrowsAsync<QmpParseException>(() => client.DisconnectAsync().Bounded());
        Assert.That(interrupted!.InnerException, Is.SameAs(error));
        Assert.That(error!.Reason, Does.Contain(reason));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        await peer.ReadUntilClosedAsync().Bounded();
    }

    [Test]
    public async Task Fatal_JSON_nested_deeper_than_128_levels_ends_the_session_with_QmpParseException()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        using var peer = await listener.ConnectQmpAsync(client);

        await peer.SendLinesAsync($$"""{"event":"DEEP","data":{{new string('[', 200)}}{{new string(']', 200)}}}""").Bounded();

        await client.UntilRunstateAsync(Runstate.Disconnecting);
        var error = await Assert.ThrowsAsync<QmpParseException>(() => client.DisconnectAsync().Bounded());
        Assert.That(error!.Reason, Does.Contain("Malformed JSON"));
        await peer.ReadUntilClosedAsync().Bounded();
    }

    [TestCase("""{"return":"stray","id":999999}""", TestName = "Tolerated_a_return_with_an_id_the_client_never_sent_is_dropped")]
    [TestCase("""{"return":"stray","id":-1}""", TestName = "Tolerated_a_return_with_a_negative_id_is_dropped")]
    [TestCase("""{"return":"stray","id":1e400}""", TestName = "Tolerated_a_return_with_an_id_beyond_Int64_is_dropped")]
    [TestCase("""{"return":"stray","id":"PENDING"}""", TestName = "Tolerated_a_return_with_the_pending_id_as_a_string_is_dropped")]
    [TestCase("""{"return":"stray","id":null}""", TestName = "Tolerated_a_return_with_a_null_id_is_dropped")]
    [TestCase("""{"return":"stray","id":{"nested":1}}""", TestName = "Tolerated_a_return_with_an_object_id_is_dropped")]
    [TestCase("""{"error":{"class":"GenericError","desc":"stray"},"id":424242}""", TestName = "Tolerated_an_error_with_an_id_the_client_never_sent_is_dropped")]
    [TestCase("""{"return":"stray","id":ANSWERED}""", TestName = "Tolerated_a_second_reply_to_an_execute_already_answered_is_dropped")]
    [TestCase("""{"event":"ODD","timestamp":"yesterday","data":[1,2],"extra":true}""", TestName = "Tolerated_an_event_with_a_malformed_timestamp_array_data_and_unknown_members_is_delivered")]
    [TestCase("""{"event":"ODD"}""", TestName = "Tolerated_an_event_without_timestamp_or_data_is_delivered")]
    public async Task A_tolerated_line_leaves_the_session_usable(string line)
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        using var peer = await listener.ConnectQmpAsync(client);
        using var events = client.Listen();

        var answered = client.ExecuteAsync("query-name");
        var (_, answeredId) = await peer.ReadCommandAsync();
        await peer.SendLinesAsync(HostileConnection.ReturnJson(answeredId, "\"first\"")).Bounded();
        Assert.That((await answered.Bounded()).GetString(), Is.EqualTo("first"));

        var pending = client.ExecuteAsync("query-status");
        var (_, pendingId) = await peer.ReadCommandAsync();
        var hostile = line.Replace("PENDING", pendingId, StringComparison.Ordinal).Replace("ANSWERED", answeredId, StringComparison.Ordinal);
        await peer.SendLinesAsync(hostile, HostileConnection.ReturnJson(pendingId, """{"status":"running"}""")).Bounded();

        Assert.That((await pending.Bounded()).GetProperty("status").GetString(), Is.EqualTo("running"), "the pending execute gets its own reply, not the hostile line");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        if (line.StartsWith("""{"event""", StringComparison.Ordinal))
        {
            var delivered = await events.ReadAsync().Bounded();
            Assert.That(delivered.Name, Is.EqualTo("ODD"));
            Assert.That(delivered.Timestamp, Is.EqualTo(DateTimeOffset.MinValue), "a missing or malformed timestamp reads as MinValue");
        }

        var next = client.ExecuteAsync("query-version");
        var (_, nextId) = await peer.ReadCommandAsync();
        await peer.SendLinesAsync(HostileConnection.ReturnJson(nextId, "42")).Bounded();
        Assert.That((await next.Bounded()).GetInt32(), Is.EqualTo(42), "the next execute works");

        var closing = peer.ReadUntilClosedAsync();
        await client.DisconnectAsync().Bounded();
        Assert.That((await closing.Bounded()).How, Is.EqualTo("end of stream"));
    }

    [Test]
    public async Task Tolerated_a_hundred_stray_replies_between_real_ones_are_all_dropped_and_every_execute_gets_its_own_reply()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        using var peer = await listener.ConnectQmpAsync(client);

        var executes = Enumerable.Range(0, 20).Select(i => client.ExecuteAsync("echo", QmpJson.Parse($$"""{"n":{{i}}}"""))).ToList();
        var commands = new List<string>();
        for (var i = 0; i < executes.Count; i++)
        {
            commands.Add((await peer.ReadCommandAsync()).IdJson);
        }

        var lines = new List<string>();
        for (var i = 0; i < commands.Count; i++)
        {
            lines.AddRange(Enumerable.Range(0, 5).Select(k => HostileConnection.ReturnJson((10_000_000 + (i * 5) + k).ToString(System.Globalization.CultureInfo.InvariantCulture), "\"stray\"")));
            lines.Add(HostileConnection.ReturnJson(commands[i], i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        await peer.SendLinesAsync([.. lines]).Bounded();

        for (var i = 0; i < executes.Count; i++)
        {
            Assert.That((await executes[i].Bounded()).GetInt32(), Is.EqualTo(i));
        }

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        var closing = peer.ReadUntilClosedAsync();
        await client.DisconnectAsync().Bounded();
        await closing.Bounded();
    }
}
