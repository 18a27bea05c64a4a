using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;
using Microsoft.Extensions.Logging;

namespace Aqmp.Pipelines.Qmp.Tests.Client;

/// <summary>The <c>return</c> value of <c>query-status</c>, for <see cref="QmpClient.ExecuteAsync{T}"/>.</summary>
/// <param name="Status">The run state, e.g. <c>running</c>.</param>
/// <param name="Running">Whether the guest runs.</param>
/// <param name="Singlestep">Whether single-stepping is on.</param>
public sealed record QueryStatusResult(string Status, bool Running, bool Singlestep);

/// <summary>Source-generated metadata for the results these tests deserialize (no reflection).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(QueryStatusResult))]
internal sealed partial class QmpClientTestsJsonContext : JsonSerializerContext;

/// <summary>
/// <see cref="QmpClient"/> against a <see cref="ScriptedQmpPeer"/>: the test writes the server's
/// exact bytes and reads the client's commands, so ordering, interleaving and failures are scripted.
/// </summary>
public static class QmpClientTests
{
    /// <summary>Reading the greeting and negotiating capabilities, and every way it can fail.</summary>
    public class Negotiation
    {
        [Test]
        public async Task Connect_reads_the_greeting_version_and_capabilities_then_runs()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var client = peer.Client!;
            var opening = peer.StartOpen();

            await peer.WriteLineAsync(ScriptedQmpPeer.GreetingJson(["oob", "x-future"], new QmpVersion(8, 1, 3, "Debian 1:8.1.3"))).Bounded();
            var capabilities = await peer.ReadCommandAsync("qmp_capabilities").Bounded();
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Connecting), "still connecting until qmp_capabilities is answered");
            await peer.ReplyAsync(capabilities).Bounded();
            await opening.Bounded();

            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
            Assert.That(client.Greeting, Is.Not.Null);
            Assert.That(client.Greeting!.Version, Is.EqualTo(new QmpVersion(8, 1, 3, "Debian 1:8.1.3")));
            Assert.That(client.Greeting.Capabilities, Is.EqualTo(new[] { "oob", "x-future" }));
            Assert.That(client.Greeting.OffersOutOfBand, Is.True);
        }

        [Test]
        public async Task Qmp_capabilities_is_sent_with_a_numeric_id_and_no_arguments_by_default()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());

            var command = await peer.ConnectAsync("oob").Bounded();

            Assert.That(command.CommandName, Is.EqualTo("qmp_capabilities"));
            Assert.That(command.IsOutOfBand, Is.False);
            Assert.That(command.Id, Is.Not.Null);
            Assert.That(command.Id!.Value.ValueKind, Is.EqualTo(JsonValueKind.Number));
            Assert.That(command.Arguments, Is.Null, "oob is offered but EnableOutOfBand is off: nothing is requested");
            Assert.That(peer.Client!.OutOfBandEnabled, Is.False);
        }

        [Test]
        public async Task With_EnableOutOfBand_and_oob_offered_qmp_capabilities_requests_oob_and_OutOfBandEnabled_is_true()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient(new QmpClientOptions { EnableOutOfBand = true }));

            var command = await peer.ConnectAsync("oob").Bounded();

            Assert.That(command.Arguments, Is.Not.Null);
            Assert.That(command.Arguments!.Value.GetRawText(), Is.EqualTo("""{"enable":["oob"]}"""));
            Assert.That(peer.Client!.OutOfBandEnabled, Is.True);
        }

        [Test]
        public async Task With_EnableOutOfBand_but_oob_not_offered_oob_is_not_requested_nor_enabled()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient(new QmpClientOptions { EnableOutOfBand = true }));

            var command = await peer.ConnectAsync().Bounded();

            Assert.That(command.Arguments, Is.Null);
            Assert.That(peer.Client!.OutOfBandEnabled, Is.False);
            Assert.That(peer.Client.Greeting!.Capabilities, Is.Empty);
        }

        [TestCase("""{"return":{}}""", TestName = "A_peer_that_sends_a_reply_instead_of_a_greeting_fails_negotiation_with_a_QmpParseException")]
        [TestCase("""{"execute":"query-status"}""", TestName = "A_peer_that_sends_a_command_instead_of_a_greeting_fails_negotiation_with_a_QmpParseException")]
        [TestCase("""{"error":{"class":"GenericError","desc":"nope"}}""", TestName = "A_peer_that_sends_an_error_instead_of_a_greeting_fails_negotiation_with_a_QmpParseException")]
        public async Task A_peer_that_sends_another_QMP_message_instead_of_a_greeting_fails_negotiation(string firstLine)
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var opening = peer.StartOpen();

            await peer.WriteLineAsync(firstLine).Bounded();

            var error = await ExpectNegotiationFailureAsync(peer, opening);
            Assert.That(error.InnerException, Is.TypeOf<QmpParseException>());
            Assert.That(((QmpParseException)error.InnerException!).Excerpt, Does.Contain(firstLine));
        }

        [Test]
        public async Task A_peer_that_sends_non_JSON_fails_negotiation_with_a_QmpParseException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var opening = peer.StartOpen();

            await peer.WriteLineAsync("hello").Bounded();

            var error = await ExpectNegotiationFailureAsync(peer, opening);
            Assert.That(error.InnerException, Is.TypeOf<QmpParseException>());
            Assert.That(((QmpParseException)error.InnerException!).Excerpt, Is.EqualTo("'hello'"));
            Assert.That(error.InnerException!.InnerException, Is.InstanceOf<JsonException>());
        }

        [Test]
        public async Task A_peer_that_closes_before_the_greeting_fails_negotiation_with_EndOfStreamException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var opening = peer.StartOpen();

            await peer.CloseAsync().Bounded();

            var error = await ExpectNegotiationFailureAsync(peer, opening);
            Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
            Assert.That(error.Reason, Does.Contain("closed"));
        }

        [Test]
        public async Task A_peer_that_closes_mid_greeting_fails_negotiation_with_IncompleteFrameException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var opening = peer.StartOpen();

            await peer.WriteRawAsync("""{"QMP":{"version":{"qemu":""").Bounded();
            await peer.CloseAsync().Bounded();

            var error = await ExpectNegotiationFailureAsync(peer, opening);
            Assert.That(error.InnerException, Is.TypeOf<IncompleteFrameException>());
            Assert.That(error.InnerException!.InnerException, Is.TypeOf<EndOfStreamException>());
            Assert.That(error.Reason, Does.Contain("closed"));
        }

        [Test]
        public async Task A_peer_that_refuses_qmp_capabilities_fails_negotiation_with_a_QmpExecuteException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var opening = peer.StartOpen();

            await peer.SendGreetingAsync("oob").Bounded();
            var command = await peer.ReadCommandAsync("qmp_capabilities").Bounded();
            await peer.ReplyErrorAsync(command, "GenericError", "Capabilities negotiation refused").Bounded();

            var error = await ExpectNegotiationFailureAsync(peer, opening);
            Assert.That(error.InnerException, Is.TypeOf<QmpExecuteException>());
            var refusal = (QmpExecuteException)error.InnerException!;
            Assert.That(refusal.Command, Is.EqualTo("qmp_capabilities"));
            Assert.That(refusal.ErrorClass, Is.EqualTo("GenericError"));
            Assert.That(refusal.Description, Is.EqualTo("Capabilities negotiation refused"));
        }

        [Test]
        public async Task A_greeting_with_a_malformed_version_fails_negotiation_with_a_QmpParseException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var opening = peer.StartOpen();

            await peer.WriteLineAsync("""{"QMP":{"version":{"package":"no qemu member"},"capabilities":[]}}""").Bounded();

            // The QmpNegotiationException contract: "the peer is not a QMP server".
            var error = await ExpectNegotiationFailureAsync(peer, opening);
            Assert.That(error.InnerException, Is.TypeOf<QmpParseException>());
        }

        [Test]
        public async Task A_peer_that_closes_right_after_the_greeting_fails_negotiation_with_QmpNegotiationException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var opening = peer.StartOpen();

            // The whole connection goes away: the client's qmp_capabilities cannot be delivered.
            await peer.StopReadingAsync().Bounded();
            await peer.SendGreetingAsync("oob").Bounded();
            await peer.CloseAsync().Bounded();

            // The peer stopped reading, so only the outcome is checked here, not the client's closing of its output.
            var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => opening.Bounded());
            Assert.That(error!.Message, Does.StartWith(ConnectException.SessionPhase));
            Assert.That(peer.Client!.Runstate, Is.EqualTo(Runstate.Idle), "a failed negotiation rolls back to Idle");
            Assert.That(error.InnerException, Is.InstanceOf<EndOfStreamException>().Or.InstanceOf<IOException>().Or.InstanceOf<IncompleteFrameException>());
        }

        [Test]
        public async Task A_qmp_capabilities_reply_with_another_id_fails_negotiation_with_a_QmpParseException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var opening = peer.StartOpen();

            await peer.SendGreetingAsync().Bounded();
            await peer.ReadCommandAsync("qmp_capabilities").Bounded();
            await peer.WriteLineAsync(ScriptedQmpPeer.ReturnJson("\"someone-else\"")).Bounded();

            var error = await ExpectNegotiationFailureAsync(peer, opening);
            Assert.That(error.InnerException, Is.TypeOf<QmpParseException>());
        }

        [Test]
        public async Task A_greeting_over_MaximumMessageLength_fails_negotiation_with_FrameTooLargeException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient(new QmpClientOptions { MaximumMessageLength = 64 }));
            var opening = peer.StartOpen();

            await peer.SendGreetingAsync("oob").Bounded();

            var error = await ExpectNegotiationFailureAsync(peer, opening);
            Assert.That(error.InnerException, Is.TypeOf<FrameTooLargeException>());
            Assert.That(((FrameTooLargeException)error.InnerException!).MaximumLength, Is.EqualTo(64));
        }

        [Test]
        public async Task A_greeting_that_never_comes_raises_OperationCanceledException_unwrapped_when_the_token_fires()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

            var error = await Assert.CatchAsync<OperationCanceledException>(() => peer.StartOpen(timeout.Token).Bounded());

            Assert.That(error!.CancellationToken, Is.EqualTo(timeout.Token), "the caller's own token");
            Assert.That(peer.Client!.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(await peer.ReadUntilClientClosesAsync().Bounded(), Is.Empty, "the pipe is completed and nothing was sent");
        }

        [Test]
        public async Task A_qmp_capabilities_reply_that_never_comes_raises_OperationCanceledException_when_the_token_is_cancelled()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            using var cancel = new CancellationTokenSource();
            var opening = peer.StartOpen(cancel.Token);

            await peer.SendGreetingAsync().Bounded();
            await peer.ReadCommandAsync("qmp_capabilities").Bounded();
            await cancel.CancelAsync().Bounded();

            var error = await Assert.CatchAsync<OperationCanceledException>(() => opening.Bounded());
            Assert.That(error!.CancellationToken, Is.EqualTo(cancel.Token));
            Assert.That(peer.Client!.Runstate, Is.EqualTo(Runstate.Idle));
            Assert.That(await peer.ReadUntilClientClosesAsync().Bounded(), Is.Empty);
        }

        [Test]
        public async Task After_a_failed_negotiation_the_same_client_connects_again()
        {
            var client = new QmpClient();
            await using var refusing = new ScriptedQmpPeer(client, ownsClient: false);
            var opening = refusing.StartOpen();
            await refusing.WriteLineAsync("hello").Bounded();
            await ExpectNegotiationFailureAsync(refusing, opening);

            await using var accepting = new ScriptedQmpPeer(client);
            await accepting.ConnectAsync().Bounded();

            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        }

        [Test]
        public async Task Events_sent_before_the_greeting_and_during_qmp_capabilities_reach_a_listener_created_before_connecting_first_and_in_order()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());
            var client = peer.Client!;
            using var listener = client.Listen();
            var opening = peer.StartOpen();

            await peer.WriteLinesAsync(
                ScriptedQmpPeer.EventJson("BEFORE_GREETING"),
                ScriptedQmpPeer.GreetingJson(["oob"]),
                ScriptedQmpPeer.EventJson("AFTER_GREETING", """{"n":1}""")).Bounded();
            var command = await peer.ReadCommandAsync("qmp_capabilities").Bounded();
            await peer.WriteLinesAsync(
                ScriptedQmpPeer.EventJson("DURING_CAPABILITIES"),
                ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(command))).Bounded();
            await opening.Bounded();
            await peer.SendEventAsync("IN_SESSION").Bounded();

            var events = await listener.ReadEventsAsync(4).Bounded();
            Assert.That(events.Names(), Is.EqualTo(new[] { "BEFORE_GREETING", "AFTER_GREETING", "DURING_CAPABILITIES", "IN_SESSION" }));
            Assert.That(events[1].Data!.Value.GetProperty("n").GetInt32(), Is.EqualTo(1));
            Assert.That(events[0].Timestamp, Is.EqualTo(DateTimeOffset.FromUnixTimeSeconds(1700000000).AddTicks(123456 * 10)));
        }

        /// <summary>Awaits a connect expected to fail negotiation and checks the common contract.</summary>
        internal static async Task<QmpNegotiationException> ExpectNegotiationFailureAsync(ScriptedQmpPeer peer, Task opening)
        {
            var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => opening.Bounded());
            Assert.That(error, Is.InstanceOf<ConnectException>());
            Assert.That(error!.Message, Does.StartWith(ConnectException.SessionPhase));
            Assert.That(error.InnerException, Is.Not.Null);
            Assert.That(peer.Client!.Runstate, Is.EqualTo(Runstate.Idle), "a failed negotiation rolls back to Idle");
            await peer.ReadUntilClientClosesAsync().Bounded(); // the client completed its output...
            Assert.That(await peer.ClientStoppedReadingAsync().Bounded(), Is.True, "...and its input");
            return error;
        }
    }

    /// <summary>Executing commands: replies by id, errors, typed results, raw messages.</summary>
    public class Execute
    {
        [Test]
        public async Task Execute_sends_the_command_with_its_arguments_and_a_fresh_numeric_id()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            var first = client.ExecuteAsync("device_del", QmpJson.Parse("""{"id":"net0"}"""));
            var second = client.ExecuteAsync("query-status");
            var commands = await peer.ReadCommandsAsync(2).Bounded();
            await peer.ReplyAsync(commands[0]).Bounded();
            await peer.ReplyAsync(commands[1], """{"status":"running","singlestep":false,"running":true}""").Bounded();
            await Task.WhenAll(first, second).Bounded();

            Assert.That(commands[0].Arguments!.Value.GetRawText(), Is.EqualTo("""{"id":"net0"}"""));
            Assert.That(commands[1].Arguments, Is.Null);
            Assert.That(commands.Select(c => c.Id!.Value.ValueKind), Is.All.EqualTo(JsonValueKind.Number));
            Assert.That(commands[0].Id!.Value.GetInt64(), Is.Not.EqualTo(commands[1].Id!.Value.GetInt64()));
            Assert.That((await first.Bounded()).GetRawText(), Is.EqualTo("{}"));
        }

        [Test]
        public async Task Replies_are_matched_by_id_when_the_peer_answers_three_commands_in_reverse_order()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            string[] names = ["cmd-one", "cmd-two", "cmd-three"];
            var executes = names.ToDictionary(name => name, name => client.ExecuteAsync(name));
            var commands = await peer.ReadCommandsAsync(3).Bounded();
            var unanswered = new HashSet<string>(names);
            foreach (var command in Enumerable.Reverse(commands))
            {
                var name = command.CommandName!;
                await peer.ReplyAsync(command, $$"""{"answered":"{{name}}"}""").Bounded();
                unanswered.Remove(name);

                var result = await executes[name].Bounded();
                Assert.That(result.GetProperty("answered").GetString(), Is.EqualTo(name));
                Assert.That(unanswered.Select(n => executes[n].IsCompleted), Is.All.False, "the others still wait for their own replies");
            }

            Assert.That(commands.Select(c => c.CommandName), Is.EqualTo(names), "sent in call order");
        }

        [Test]
        public async Task Events_interleaved_between_replies_go_to_listeners_and_do_not_disturb_the_replies()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;
            using var listener = client.Listen();

            var executes = new[] { "cmd-a", "cmd-b", "cmd-c" }.Select(name => client.ExecuteAsync(name)).ToArray();
            var commands = await peer.ReadCommandsAsync(3).Bounded();
            string Reply(int i) => ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(commands[i]), $"\"{commands[i].CommandName}\"");
            await peer.WriteLinesAsync(
                ScriptedQmpPeer.EventJson("EVENT_1"),
                Reply(2),
                ScriptedQmpPeer.EventJson("EVENT_2", """{"x":2}"""),
                ScriptedQmpPeer.EventJson("EVENT_3"),
                Reply(0),
                ScriptedQmpPeer.EventJson("EVENT_4"),
                Reply(1),
                ScriptedQmpPeer.EventJson("EVENT_5")).Bounded();

            var results = await Task.WhenAll(executes).Bounded();
            Assert.That(results.Select(r => r.GetString()), Is.EqualTo(new[] { "cmd-a", "cmd-b", "cmd-c" }));
            var events = await listener.ReadEventsAsync(5).Bounded();
            Assert.That(events.Names(), Is.EqualTo(new[] { "EVENT_1", "EVENT_2", "EVENT_3", "EVENT_4", "EVENT_5" }));
            Assert.That(events[1].Data!.Value.GetProperty("x").GetInt32(), Is.EqualTo(2));
        }

        [Test]
        public async Task An_error_reply_raises_QmpExecuteException_with_its_class_desc_and_command_and_the_session_goes_on()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            var failing = client.ExecuteAsync("blockdev-del", QmpJson.Parse("""{"node-name":"nope"}"""));
            var command = await peer.ReadCommandAsync("blockdev-del").Bounded();
            await peer.ReplyErrorAsync(command, "GenericError", "Failed to find node with node-name='nope'").Bounded();

            var error = await Assert.ThrowsAsync<QmpExecuteException>(() => failing.Bounded());
            Assert.That(error!.ErrorClass, Is.EqualTo("GenericError"));
            Assert.That(error.Description, Is.EqualTo("Failed to find node with node-name='nope'"));
            Assert.That(error.Command, Is.EqualTo("blockdev-del"));
            Assert.That(error.Message, Does.Contain("blockdev-del").And.Contain("GenericError").And.Contain("node-name='nope'"));

            var next = client.ExecuteAsync("query-status");
            await peer.ReplyAsync(await peer.ReadCommandAsync("query-status").Bounded(), "{}").Bounded();
            Assert.That((await next.Bounded()).ValueKind, Is.EqualTo(JsonValueKind.Object));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        }

        [Test]
        public async Task ExecuteAsync_of_T_deserializes_the_return_value_with_source_generated_metadata()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();

            var status = peer.Client!.ExecuteAsync("query-status", null, QmpClientTestsJsonContext.Default.QueryStatusResult);
            var command = await peer.ReadCommandAsync("query-status").Bounded();
            await peer.ReplyAsync(command, """{"status":"paused","singlestep":false,"running":false}""").Bounded();

            Assert.That(await status.Bounded(), Is.EqualTo(new QueryStatusResult("paused", Running: false, Singlestep: false)));
        }

        [Test]
        public async Task ExecuteAsync_of_T_raises_QmpExecuteException_for_an_error_reply()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();

            var status = peer.Client!.ExecuteAsync("query-status", null, QmpClientTestsJsonContext.Default.QueryStatusResult);
            var command = await peer.ReadCommandAsync("query-status").Bounded();
            await peer.ReplyErrorAsync(command, "CommandNotFound", "The command query-status has not been found").Bounded();

            var error = await Assert.ThrowsAsync<QmpExecuteException>(() => status.Bounded());
            Assert.That(error!.ErrorClass, Is.EqualTo("CommandNotFound"));
        }

        [Test]
        public async Task ExecuteMessageAsync_returns_an_error_reply_as_it_is_without_throwing()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();

            var execute = peer.Client!.ExecuteMessageAsync(QmpMessage.Command("x-no-such-command"));
            var command = await peer.ReadCommandAsync("x-no-such-command").Bounded();
            await peer.ReplyErrorAsync(command, "CommandNotFound", "The command x-no-such-command has not been found").Bounded();

            var reply = await execute.Bounded();
            Assert.That(reply.Kind, Is.EqualTo(QmpMessageKind.Error));
            Assert.That(reply.ErrorClass, Is.EqualTo("CommandNotFound"));
            Assert.That(reply.ErrorDescription, Is.EqualTo("The command x-no-such-command has not been found"));
            Assert.That(reply.Id!.Value.GetRawText(), Is.EqualTo(ScriptedQmpPeer.IdOf(command)));
        }

        [Test]
        public async Task ExecuteMessageAsync_replaces_the_commands_own_id_with_a_fresh_one_and_returns_the_success_reply()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();

            var execute = peer.Client!.ExecuteMessageAsync(QmpMessage.Command("query-name", id: QmpJson.String("mine")));
            var command = await peer.ReadCommandAsync("query-name").Bounded();
            await peer.ReplyAsync(command, """{"name":"vm0"}""").Bounded();

            Assert.That(command.Id!.Value.ValueKind, Is.EqualTo(JsonValueKind.Number));
            var reply = await execute.Bounded();
            Assert.That(reply.Kind, Is.EqualTo(QmpMessageKind.Return));
            Assert.That(reply.ReturnValue!.Value.GetProperty("name").GetString(), Is.EqualTo("vm0"));
        }

        [Test]
        public async Task ExecuteMessageAsync_refuses_a_message_that_is_not_a_command()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();

            await Assert.ThrowsAsync<ArgumentException>(() => peer.Client!.ExecuteMessageAsync(QmpMessage.Return(null, QmpJson.Number(1))).Bounded());

            Assert.That(peer.Client!.Runstate, Is.EqualTo(Runstate.Running));
        }

        [Test]
        public async Task Execute_while_Idle_raises_StateException()
        {
            await using var peer = new ScriptedQmpPeer(new QmpClient());

            var error = await Assert.ThrowsAsync<StateException>(() => peer.Client!.ExecuteAsync("query-status").Bounded());

            Assert.That(error!.State, Is.EqualTo(Runstate.Idle));
            Assert.That(error.Required, Is.EqualTo(Runstate.Running));
        }

        [Test]
        public async Task Execute_after_the_session_ended_by_itself_raises_StateException_carrying_the_root_cause()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;
            await peer.CloseAsync().Bounded();
            await client.WaitForRunstateAsync(Runstate.Disconnecting).Bounded();

            var error = await Assert.ThrowsAsync<StateException>(() => client.ExecuteAsync("query-status").Bounded());

            Assert.That(error!.State, Is.EqualTo(Runstate.Disconnecting));
            Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
            await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());
        }

        [Test]
        public async Task ExecuteAsync_of_T_raises_JsonException_when_the_return_value_does_not_fit_T()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();

            var status = peer.Client!.ExecuteAsync("query-status", null, QmpClientTestsJsonContext.Default.QueryStatusResult);
            await peer.ReplyAsync(await peer.ReadCommandAsync("query-status").Bounded(), """{"status":42,"singlestep":false,"running":true}""").Bounded();

            await Assert.CatchAsync<JsonException>(() => status.Bounded());
            Assert.That(peer.Client.Runstate, Is.EqualTo(Runstate.Running));
        }
    }

    /// <summary>Cancelled and timed-out executes, and replies that match no execute.</summary>
    public class CancellationAndTimeouts
    {
        [TestCase(false, TestName = "Cancelling_an_execute_raises_OperationCanceledException_discards_its_late_reply_and_a_new_execute_works")]
        [TestCase(true, TestName = "Cancelling_an_execute_under_a_DefaultExecuteTimeout_still_raises_OperationCanceledException_not_TimeoutException")]
        public async Task Cancelling_an_execute(bool withDefaultTimeout)
        {
            using var log = new CapturingLoggerProvider();
            var options = new QmpClientOptions { DefaultExecuteTimeout = withDefaultTimeout ? TimeSpan.FromMinutes(5) : null };
            await using var peer = new ScriptedQmpPeer(new QmpClient(options, log.Factory));
            await peer.ConnectAsync().Bounded();
            var client = peer.Client!;
            using var cancel = new CancellationTokenSource();

            var execute = client.ExecuteAsync("x-slow", cancellationToken: cancel.Token);
            var command = await peer.ReadCommandAsync("x-slow").Bounded();
            await cancel.CancelAsync().Bounded();

            await Assert.CatchAsync<OperationCanceledException>(() => execute.Bounded());

            await peer.ReplyAsync(command, "\"late\"").Bounded();
            var next = client.ExecuteAsync("x-next");
            await peer.ReplyAsync(await peer.ReadCommandAsync("x-next").Bounded(), "\"fresh\"").Bounded();

            Assert.That((await next.Bounded()).GetString(), Is.EqualTo("fresh"));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
            Assert.That(log.Messages(LogLevel.Warning), Has.One.Contains($"unknown id {ScriptedQmpPeer.IdOf(command)} dropped"));
        }

        [TestCase(false, TestName = "A_cancelled_execute_raises_OperationCanceledException_carrying_the_callers_token")]
        [TestCase(true, TestName = "A_cancelled_execute_under_a_DefaultExecuteTimeout_raises_OperationCanceledException_carrying_the_callers_token")]
        public async Task A_cancelled_execute_carries_the_callers_token(bool withDefaultTimeout)
        {
            var options = new QmpClientOptions { DefaultExecuteTimeout = withDefaultTimeout ? TimeSpan.FromMinutes(5) : null };
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync(options).Bounded();
            using var cancel = new CancellationTokenSource();

            var execute = peer.Client!.ExecuteAsync("x-slow", cancellationToken: cancel.Token);
            await peer.ReadCommandAsync("x-slow").Bounded();
            await cancel.CancelAsync().Bounded();

            var error = await Assert.CatchAsync<OperationCanceledException>(() => execute.Bounded());
            Assert.That(error!.CancellationToken, Is.EqualTo(cancel.Token), "callers filter with `when (e.CancellationToken == token)`");
        }

        [Test]
        public async Task An_execute_with_an_already_cancelled_token_raises_OperationCanceledException_and_is_not_sent()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            await Assert.CatchAsync<OperationCanceledException>(() => client.ExecuteAsync("system_reset", cancellationToken: new CancellationToken(canceled: true)).Bounded());

            var next = client.ExecuteAsync("query-status");
            var firstSent = await peer.ReadCommandAsync().Bounded();
            Assert.That(firstSent.CommandName, Is.EqualTo("query-status"), "the cancelled system_reset must not reach the server");
            await peer.ReplyAsync(firstSent).Bounded();
            await next.Bounded();
        }

        [Test]
        public async Task DefaultExecuteTimeout_raises_TimeoutException_and_the_session_stays_usable()
        {
            using var log = new CapturingLoggerProvider();
            var options = new QmpClientOptions { DefaultExecuteTimeout = TimeSpan.FromSeconds(1) };
            await using var peer = new ScriptedQmpPeer(new QmpClient(options, log.Factory));
            await peer.ConnectAsync().Bounded();
            var client = peer.Client!;

            var execute = client.ExecuteAsync("x-unanswered");
            var command = await peer.ReadCommandAsync("x-unanswered").Bounded();

            var error = await Assert.ThrowsAsync<TimeoutException>(() => execute.Bounded());
            Assert.That(error!.Message, Does.Contain("x-unanswered"));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));

            await peer.ReplyAsync(command, "\"late\"").Bounded();
            var next = client.ExecuteAsync("x-next");
            await peer.ReplyAsync(await peer.ReadCommandAsync("x-next").Bounded(), "\"fresh\"").Bounded();
            Assert.That((await next.Bounded()).GetString(), Is.EqualTo("fresh"));
            Assert.That(log.Messages(LogLevel.Warning), Has.One.Contains($"unknown id {ScriptedQmpPeer.IdOf(command)} dropped"));
        }

        [Test]
        public async Task A_reply_with_an_unknown_id_is_dropped_and_does_not_disturb_pending_executes()
        {
            using var log = new CapturingLoggerProvider();
            await using var peer = new ScriptedQmpPeer(new QmpClient(null, log.Factory));
            await peer.ConnectAsync().Bounded();
            var client = peer.Client!;

            var execute = client.ExecuteAsync("query-name");
            var command = await peer.ReadCommandAsync("query-name").Bounded();
            await peer.WriteLinesAsync(
                ScriptedQmpPeer.ReturnJson("999999", "\"stray\""),
                ScriptedQmpPeer.ErrorJson("\"not-ours\"", "GenericError", "stray error"),
                ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(command), """{"name":"vm0"}""")).Bounded();

            Assert.That((await execute.Bounded()).GetProperty("name").GetString(), Is.EqualTo("vm0"));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
            Assert.That(log.Messages(LogLevel.Warning), Has.Some.Contains("unknown id 999999 dropped"));
            Assert.That(log.Messages(LogLevel.Warning), Has.Some.Contains("unknown id \"not-ours\" dropped"));
        }

        [TestCase("""{"error":{"class":"GenericError","desc":"JSON parse error, invalid keyword"}}""", TestName = "An_error_reply_without_an_id_ends_the_session_with_a_QmpParseException_as_root_cause")]
        [TestCase("""{"return":{}}""", TestName = "A_return_without_an_id_ends_the_session_with_a_QmpParseException_as_root_cause")]
        public async Task A_reply_without_an_id_ends_the_session(string reply)
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;
            using var listener = client.Listen();

            var execute = client.ExecuteAsync("stop");
            await peer.ReadCommandAsync("stop").Bounded();
            await peer.WriteLineAsync(reply).Bounded();

            var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
            Assert.That(interrupted!.Command, Is.EqualTo("stop"));
            Assert.That(interrupted.InnerException, Is.TypeOf<QmpParseException>());
            var (_, listenerError) = await listener.DrainAsync().Bounded();
            Assert.That(listenerError, Is.SameAs(interrupted.InnerException));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Disconnecting), "the session ended by itself");

            var rootCause = await Assert.ThrowsAsync<QmpParseException>(() => client.DisconnectAsync().Bounded());
            Assert.That(rootCause, Is.SameAs(interrupted.InnerException));
            Assert.That(rootCause!.Message, Does.Contain("without an id"));
            Assert.That(rootCause.Excerpt, Does.Contain(reply));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        }
    }

    /// <summary>How sessions end: peer close, local disconnect, malformed and oversize input, quit.</summary>
    public class SessionEnd
    {
        [TestCase("""{"QMP":{"version":{"qemu":{"micro":0,"minor":0,"major":9},"package":""},"capabilities":[]}}""", TestName = "A_greeting_from_the_peer_mid_session_ends_it_with_a_QmpParseException")]
        [TestCase("""{"execute":"query-status","id":1}""", TestName = "A_command_from_the_peer_mid_session_ends_it_with_a_QmpParseException")]
        [TestCase("""{"execute":5,"id":1}""", TestName = "A_command_with_a_non_string_execute_from_the_peer_mid_session_ends_it_with_a_QmpParseException")]
        [TestCase("""{"return":{},"execute":"x","id":1}""", TestName = "A_return_with_an_execute_member_from_the_peer_mid_session_ends_it_with_a_QmpParseException")]
        public async Task An_unexpected_message_kind_mid_session_ends_it(string line)
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            await peer.WriteLineAsync(line).Bounded();

            await client.WaitForRunstateAsync(Runstate.Disconnecting).Bounded();
            var error = await Assert.ThrowsAsync<QmpParseException>(() => client.DisconnectAsync().Bounded());
            Assert.That(error!.Excerpt, Does.Contain(line));
        }

        [Test]
        public async Task When_the_peer_closes_five_pending_executes_raise_QmpExecuteInterruptedException_with_EndOfStreamException()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;
            using var everything = client.Listen();
            using var stops = client.Listen("STOP");

            var executes = Enumerable.Range(1, 5).Select(i => client.ExecuteAsync($"cmd-{i}")).ToArray();
            await peer.ReadCommandsAsync(5).Bounded();
            await peer.SendEventAsync("STOP").Bounded();
            await peer.CloseAsync().Bounded();

            var errors = new List<QmpExecuteInterruptedException>();
            for (var i = 0; i < executes.Length; i++)
            {
                var error = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => executes[i].Bounded());
                Assert.That(error!.Command, Is.EqualTo($"cmd-{i + 1}"));
                Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
                errors.Add(error);
            }

            var rootCause = errors[0].InnerException;
            Assert.That(errors.Select(e => e.InnerException), Is.All.SameAs(rootCause));
            var (events, endedWith) = await everything.DrainAsync().Bounded();
            Assert.That(events.Names(), Is.EqualTo(new[] { "STOP" }));
            Assert.That(endedWith, Is.SameAs(rootCause), "a listener's enumeration ends with the root cause");
            var (stopEvents, stopsEndedWith) = await stops.DrainAsync().Bounded();
            Assert.That(stopEvents.Names(), Is.EqualTo(new[] { "STOP" }));
            Assert.That(stopsEndedWith, Is.SameAs(rootCause));

            var disconnectError = await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());
            Assert.That(disconnectError, Is.SameAs(rootCause));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        }

        [Test]
        public async Task A_local_DisconnectAsync_interrupts_pending_executes_without_a_cause_and_ends_listeners_normally()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;
            using var listener = client.Listen();

            var executes = Enumerable.Range(1, 3).Select(i => client.ExecuteAsync($"cmd-{i}")).ToArray();
            await peer.ReadCommandsAsync(3).Bounded();
            await peer.SendEventAsync("RESUME").Bounded();
            Assert.That((await listener.ReadAsync().Bounded()).Name, Is.EqualTo("RESUME"));

            await client.DisconnectAsync().Bounded();

            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
            foreach (var execute in executes)
            {
                var error = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
                Assert.That(error!.InnerException, Is.Null);
                Assert.That(error.Message, Does.Contain("disconnected"));
            }

            var (events, endedWith) = await listener.DrainAsync().Bounded();
            Assert.That(events, Is.Empty);
            Assert.That(endedWith, Is.Null, "a requested disconnect ends listeners normally");
            Assert.That(await peer.ReadUntilClientClosesAsync().Bounded(), Is.Empty, "the client completed its end of the pipe");
        }

        [Test]
        public async Task Malformed_JSON_from_the_peer_mid_session_ends_it_and_DisconnectAsync_raises_a_QmpParseException_quoting_an_excerpt()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;
            var execute = client.ExecuteAsync("query-status");
            await peer.ReadCommandAsync("query-status").Bounded();

            var garbage = """{"return": {"status": running}, "id": 2}""";
            await peer.WriteLineAsync(garbage).Bounded();

            var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
            Assert.That(interrupted!.InnerException, Is.TypeOf<QmpParseException>());
            await client.WaitForRunstateAsync(Runstate.Disconnecting).Bounded();
            var error = await Assert.ThrowsAsync<QmpParseException>(() => client.DisconnectAsync().Bounded());
            Assert.That(error!.Excerpt, Is.EqualTo($"'{garbage}'"));
            Assert.That(error.Message, Does.Contain(garbage));
            Assert.That(error.InnerException, Is.InstanceOf<JsonException>());
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        }

        [Test]
        public async Task A_long_malformed_line_is_quoted_clipped_to_the_maximum_excerpt_length()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            await peer.WriteLineAsync("{\"event\": " + new string('x', 1000) + "}").Bounded();

            await client.WaitForRunstateAsync(Runstate.Disconnecting).Bounded();
            var error = await Assert.ThrowsAsync<QmpParseException>(() => client.DisconnectAsync().Bounded());
            Assert.That(error!.Excerpt, Does.StartWith("'{\"event\": xxx").And.EndWith("…"));
            Assert.That(error.Excerpt.Length, Is.LessThanOrEqualTo(QmpParseException.MaximumExcerptLength + 3));
        }

        [Test]
        public async Task A_message_over_MaximumMessageLength_ends_the_session_with_FrameTooLargeException()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync(new QmpClientOptions { MaximumMessageLength = 256 }).Bounded();
            var client = peer.Client!;
            using var listener = client.Listen();
            var execute = client.ExecuteAsync("query-status");
            await peer.ReadCommandAsync("query-status").Bounded();

            await peer.SendEventAsync("FITS", $"\"{new string('a', 100)}\"").Bounded();
            await peer.SendEventAsync("TOO_BIG", $"\"{new string('b', 1000)}\"").Bounded();

            var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
            Assert.That(interrupted!.InnerException, Is.TypeOf<FrameTooLargeException>());
            var (events, endedWith) = await listener.DrainAsync().Bounded();
            Assert.That(events.Names(), Is.EqualTo(new[] { "FITS" }));
            Assert.That(endedWith, Is.TypeOf<FrameTooLargeException>());
            var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => client.DisconnectAsync().Bounded());
            Assert.That(error!.MaximumLength, Is.EqualTo(256));
            Assert.That(error.ObservedLength, Is.GreaterThan(256));
        }

        [Test]
        public async Task After_a_successful_quit_the_peer_closing_is_a_clean_end_and_DisconnectAsync_raises_nothing()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;
            using var listener = client.Listen();

            var quit = client.ExecuteAsync("quit");
            var command = await peer.ReadCommandAsync("quit").Bounded();
            await peer.WriteLinesAsync(
                ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(command)),
                ScriptedQmpPeer.EventJson("SHUTDOWN", """{"guest":false,"reason":"host-qmp-quit"}""")).Bounded();
            await peer.CloseAsync().Bounded();

            await quit.Bounded();
            var (events, endedWith) = await listener.DrainAsync().Bounded();
            Assert.That(events.Names(), Is.EqualTo(new[] { "SHUTDOWN" }));
            Assert.That(endedWith, Is.Null, "the expected end of the session is not an error");
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Disconnecting), "the session ended by itself");
            await Assert.DoesNotThrowAsync(() => client.DisconnectAsync().Bounded());
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        }

        [Test]
        public async Task Commands_executed_after_quit_was_sent_fail_at_once_with_QmpExecuteInterruptedException_and_are_never_written()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            var status = client.ExecuteAsync("query-status");
            var quit = client.ExecuteAsync("quit");
            var after = new Task[] { client.ExecuteAsync("query-name"), client.ExecuteMessageAsync(QmpMessage.Command("query-version")) };

            foreach (var late in after)
            {
                var refused = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => late.Bounded());
                Assert.That(refused!.Message, Does.Contain("not sent"));
            }

            var commands = await peer.ReadCommandsAsync(2).Bounded();
            Assert.That(commands.Select(c => c.CommandName), Is.EqualTo(new[] { "query-status", "quit" }));
            await peer.WriteLinesAsync(ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(commands[0])), ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(commands[1]))).Bounded();
            await peer.CloseAsync().Bounded();
            await status.Bounded();
            await quit.Bounded();
            Assert.That(await peer.ReadUntilClientClosesAsync().Bounded(), Is.Empty, "nothing was written after quit");
        }

        [Test]
        public async Task A_quit_the_server_answers_by_closing_without_a_reply_returns_an_undefined_value_none_is_made_up()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            var quit = client.ExecuteAsync("quit");
            await peer.ReadCommandAsync("quit").Bounded();
            await peer.CloseAsync().Bounded();

            Assert.That((await quit.Bounded()).ValueKind, Is.EqualTo(System.Text.Json.JsonValueKind.Undefined));
            await client.DisconnectAsync().Bounded();
        }

        [Test]
        public async Task A_raw_quit_the_server_answers_by_closing_without_a_reply_raises_QmpExecuteInterruptedException_saying_the_quit_took_effect()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            var quit = client.ExecuteMessageAsync(QmpMessage.Command("quit"));
            await peer.ReadCommandAsync("quit").Bounded();
            await peer.CloseAsync().Bounded();

            var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => quit.Bounded());
            Assert.That(interrupted!.Message, Does.Contain("without replying (the quit took effect)"));
            Assert.That(interrupted.InnerException, Is.Null, "the session ended cleanly");
            await client.DisconnectAsync().Bounded();
        }

        [Test]
        public async Task After_a_refused_quit_commands_are_sent_again()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            var quit = client.ExecuteAsync("quit");
            await peer.ReplyErrorAsync(await peer.ReadCommandAsync("quit").Bounded(), "GenericError", "not now").Bounded();
            await Assert.ThrowsAsync<QmpExecuteException>(() => quit.Bounded());

            var status = client.ExecuteAsync("query-status");
            await peer.ReplyAsync(await peer.ReadCommandAsync("query-status").Bounded()).Bounded();
            await status.Bounded();
        }

        [Test]
        public async Task Without_quit_the_peer_closing_makes_DisconnectAsync_raise_EndOfStreamException()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;
            using var listener = client.Listen();

            var stop = client.ExecuteAsync("stop");
            await peer.ReplyAsync(await peer.ReadCommandAsync("stop").Bounded()).Bounded();
            await stop.Bounded();
            await peer.CloseAsync().Bounded();

            var (_, endedWith) = await listener.DrainAsync().Bounded();
            Assert.That(endedWith, Is.TypeOf<EndOfStreamException>());
            await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        }

        [Test]
        public async Task After_a_refused_quit_the_peer_closing_is_still_an_error()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var client = peer.Client!;

            var quit = client.ExecuteAsync("quit");
            await peer.ReplyErrorAsync(await peer.ReadCommandAsync("quit").Bounded(), "GenericError", "not now").Bounded();
            await Assert.ThrowsAsync<QmpExecuteException>(() => quit.Bounded());
            await peer.CloseAsync().Bounded();

            await client.WaitForRunstateAsync(Runstate.Disconnecting).Bounded();
            await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());
        }

        [Test]
        public async Task A_new_session_after_a_clean_quit_treats_a_peer_close_as_an_error_again()
        {
            var client = new QmpClient();
            await using (var first = new ScriptedQmpPeer(client, ownsClient: false))
            {
                await first.ConnectAsync().Bounded();
                var quit = client.ExecuteAsync("quit");
                await first.ReplyAsync(await first.ReadCommandAsync("quit").Bounded()).Bounded();
                await quit.Bounded();
                await first.CloseAsync().Bounded();
                await client.WaitForRunstateAsync(Runstate.Disconnecting).Bounded();
                await client.DisconnectAsync().Bounded();
            }

            await using var second = new ScriptedQmpPeer(client);
            await second.ConnectAsync().Bounded();
            await second.CloseAsync().Bounded();

            await client.WaitForRunstateAsync(Runstate.Disconnecting).Bounded();
            await Assert.ThrowsAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());
        }
    }

    /// <summary>Large messages within the default 10 MiB limit, end to end.</summary>
    public class LargeMessages
    {
        private const int FiveMegabytes = 5 * 1000 * 1000;

        [Test]
        public async Task A_5_MB_return_value_is_received_intact_under_the_default_10_MiB_limit()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var big = PatternString(FiveMegabytes);

            var execute = peer.Client!.ExecuteAsync("x-big");
            var command = await peer.ReadCommandAsync("x-big").Bounded();
            await peer.ReplyAsync(command, $"\"{big}\"").Bounded();

            var value = await execute.Bounded();
            Assert.That(value.ValueKind, Is.EqualTo(JsonValueKind.String));
            Assert.That(value.GetString(), Is.EqualTo(big));
        }

        [Test]
        public async Task A_5_MB_return_value_arriving_in_64_KiB_pieces_is_received_intact()
        {
            // Each piece is flushed on its own: the partial line sits unconsumed in the client's
            // input (far more than one 64 KiB read) while the rest arrives.
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var big = PatternString(FiveMegabytes);

            var execute = peer.Client!.ExecuteAsync("x-big");
            var command = await peer.ReadCommandAsync("x-big").Bounded();
            var line = Encoding.UTF8.GetBytes(ScriptedQmpPeer.ReturnJson(ScriptedQmpPeer.IdOf(command), $"\"{big}\"") + "\r\n");
            for (var offset = 0; offset < line.Length; offset += 64 * 1024)
            {
                await peer.WriteRawAsync(line.AsMemory(offset, Math.Min(64 * 1024, line.Length - offset))).Bounded();
            }

            Assert.That((await execute.Bounded()).GetString(), Is.EqualTo(big));
        }

        [Test]
        public async Task Over_a_Unix_socket_a_5_MB_return_value_from_the_simulator_is_received_intact()
        {
            var big = PatternString(FiveMegabytes);
            var fixture = await SimulatorFixture.StartAsync().Bounded();
            try
            {
                fixture.Simulator.Handle("x-big", (_, _) => ValueTask.FromResult<JsonElement?>(QmpJson.String(big)));
                var client = await fixture.ConnectAsync().Bounded();
                try
                {
                    var value = await client.ExecuteAsync("x-big").Bounded();
                    Assert.That(value.GetString(), Is.EqualTo(big));
                    Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
                }
                finally
                {
                    await client.DisposeAsync().Bounded();
                }
            }
            finally
            {
                await fixture.DisposeAsync().Bounded();
            }
        }

        [Test]
        public async Task A_message_over_the_default_10_MiB_limit_ends_the_session_with_FrameTooLargeException()
        {
            await using var peer = await ScriptedQmpPeer.ConnectNewAsync().Bounded();
            var execute = peer.Client!.ExecuteAsync("x-huge");
            var command = await peer.ReadCommandAsync("x-huge").Bounded();

            await peer.ReplyAsync(command, $"\"{new string('z', QmpFramer.DefaultMaximumMessageLength)}\"").Bounded();

            var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
            Assert.That(interrupted!.InnerException, Is.TypeOf<FrameTooLargeException>());
            Assert.That(((FrameTooLargeException)interrupted.InnerException!).MaximumLength, Is.EqualTo(QmpFramer.DefaultMaximumMessageLength));
            await Assert.ThrowsAsync<FrameTooLargeException>(() => peer.Client.DisconnectAsync().Bounded());
        }

        /// <summary>A string of JSON-safe characters in a long, non-repeating-looking pattern, so corruption shows.</summary>
        private static string PatternString(int length) => string.Create(length, 0, static (span, _) =>
        {
            const string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:";
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = alphabet[(int)(((ulong)i * 2654435761UL >> 7) % (ulong)alphabet.Length)];
            }
        });
    }

    /// <summary>Captures log entries, to check what the client reports about dropped replies.</summary>
    internal sealed class CapturingLoggerProvider : ILoggerProvider
    {
        private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();

        public CapturingLoggerProvider() => Factory = new LoggerFactory([this]);

        public ILoggerFactory Factory { get; }

        public string[] Messages(LogLevel level) => [.. _entries.Where(e => e.Level == level).Select(e => e.Message)];

        public ILogger CreateLogger(string categoryName) => new CapturingLogger(_entries);

        public void Dispose() => Factory.Dispose();

        private sealed class CapturingLogger(ConcurrentQueue<(LogLevel Level, string Message)> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
                => entries.Enqueue((logLevel, formatter(state, exception)));
        }
    }
}
