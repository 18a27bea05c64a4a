using System.Text;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.HostileInput;

/// <summary>
/// Invalid UTF-8 from a hostile peer over a real Unix socket. A <see cref="Framing.Utf8LineFramer"/>
/// session ends with a <see cref="ProtocolException"/> (exactly that type, the decoder's error as its
/// cause); a <see cref="QmpClient"/> ends with a <see cref="QmpParseException"/> wherever the bad
/// bytes are (inside a string, a member name, or between tokens), or fails to connect with a
/// <see cref="QmpNegotiationException"/> when they are in the greeting. Lines before the bad one
/// are delivered, nothing after it is, <c>DisconnectAsync</c> raises the error, the runstate is
/// Idle, and the peer sees the connection closed.
/// </summary>
public sealed class InvalidUtf8Tests
{
    /// <summary>Hostile byte sequences, by what is wrong with them.</summary>
    private static readonly Dictionary<string, byte[]> Sequences = new()
    {
        ["lone continuation byte"] = [0x80],
        ["byte 0xFF"] = [0xFF],
        ["overlong encoding of '/'"] = [0xC0, 0xAF],
        ["UTF-16 surrogate half"] = [0xED, 0xA0, 0x80],
        ["code point above U+10FFFF"] = [0xF4, 0x90, 0x80, 0x80],
        ["truncated three-byte sequence"] = [0xE2, 0x82],
    };

    private readonly SocketFiles _socketFiles = new();

    public static IEnumerable<TestCaseData> Cases() => Sequences.Keys.Select(name => new TestCaseData(name).SetArgDisplayNames(name));

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [TestCaseSource(nameof(Cases))]
    public async Task A_line_with_invalid_utf8_ends_a_Utf8LineFramer_session_with_ProtocolException_after_the_lines_before_it(string sequence)
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var protocol = new LineProtocol();
        var connecting = protocol.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        await connecting.Bounded();

        await peer.SendAsync(Concat("before\nbad "u8, Sequences[sequence], " end\nafter\n"u8)).Bounded();

        Assert.That(await protocol.NextLineAsync(), Is.EqualTo("before"));
        await protocol.UntilRunstateAsync(Runstate.Disconnecting);
        var error = await Assert.ThrowsAsync<ProtocolException>(() => protocol.DisconnectAsync().Bounded());
        Assert.That(error!.InnerException, Is.InstanceOf<DecoderFallbackException>());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(protocol.SessionEnded.RootCause, Is.SameAs(error));
        Assert.That(protocol.Received.TryRead(out var extra), Is.False, $"nothing after the bad line is delivered (got '{extra}')");
        await peer.ReadUntilClosedAsync().Bounded();
    }

    [Test]
    public async Task Invalid_utf8_in_the_middle_of_a_40_KiB_line_that_straddles_pipe_segments_ends_the_session_with_ProtocolException()
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var protocol = new LineProtocol();
        var connecting = protocol.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();
        await connecting.Bounded();

        var line = new byte[40 * 1024];
        line.AsSpan().Fill((byte)'a');
        line[20 * 1024] = 0xFF;
        await peer.SendAsync(Concat(line, [(byte)'\n'])).Bounded();

        await protocol.UntilRunstateAsync(Runstate.Disconnecting);
        var error = await Assert.ThrowsAsync<ProtocolException>(() => protocol.DisconnectAsync().Bounded());
        Assert.That(error!.InnerException, Is.InstanceOf<DecoderFallbackException>());
        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        await peer.ReadUntilClosedAsync().Bounded();
    }

    [TestCaseSource(nameof(Cases))]
    public async Task Invalid_utf8_inside_an_event_string_ends_a_QmpClient_session_with_QmpParseException_and_interrupts_the_pending_execute(string sequence)
        => await ExpectQmpSessionEndsAsync(Concat("""{"event":"BAD","data":{"text":"a"""u8, Sequences[sequence], "b\"},\"timestamp\":{\"seconds\":1,\"microseconds\":2}}\n"u8));

    [TestCase("member name", TestName = "Invalid_utf8_in_a_member_name_ends_a_QmpClient_session_with_QmpParseException")]
    [TestCase("event name", TestName = "Invalid_utf8_in_an_event_name_ends_a_QmpClient_session_with_QmpParseException")]
    [TestCase("between tokens", TestName = "Invalid_utf8_between_JSON_tokens_ends_a_QmpClient_session_with_QmpParseException")]
    [TestCase("reply value", TestName = "Invalid_utf8_in_the_return_value_of_the_pending_execute_interrupts_it_with_QmpParseException_instead_of_returning_it")]
    public async Task Invalid_utf8_elsewhere_in_a_QMP_message(string where)
    {
        byte[] bad = [0xC3, 0x28];
        var line = where switch
        {
            "member name" => Concat("""{"event":"BAD","data":{"k"""u8, bad, "\":1}}\n"u8),
            "event name" => Concat("""{"event":"B"""u8, bad, "\"}\n"u8),
            "between tokens" => Concat("""{"event":"BAD","data":{}"""u8, bad, "}\n"u8),
            _ => null,
        };
        await ExpectQmpSessionEndsAsync(line);
    }

    [TestCaseSource(nameof(Cases))]
    public async Task Invalid_utf8_in_the_greeting_fails_ConnectAsync_with_QmpNegotiationException_caused_by_QmpParseException(string sequence)
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        var connecting = client.ConnectAsync(listener.EndPoint);
        using var peer = await listener.AcceptAsync();

        await peer.SendAsync(Concat("""{"QMP":{"version":{"qemu":{"micro":1,"minor":2,"major":9},"package":"v"""u8, Sequences[sequence], "\"},\"capabilities\":[]}}\n"u8)).Bounded();

        var failure = await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.Bounded());
        Assert.That(failure!.InnerException, Is.InstanceOf<QmpParseException>(), failure.ToString());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That((await peer.ReadUntilClosedAsync().Bounded()).BytesReceived, Is.Zero, "the client sent nothing");
    }

    /// <summary>
    /// Connects a client, leaves an execute pending, sends <paramref name="line"/> (or, when null, a
    /// reply to that execute whose value holds invalid UTF-8) and expects the session to end with a
    /// <see cref="QmpParseException"/>.
    /// </summary>
    private async Task ExpectQmpSessionEndsAsync(byte[]? line)
    {
        using var listener = HostileListener.Listen(_socketFiles);
        await using var client = new QmpClient();
        using var peer = await listener.ConnectQmpAsync(client);
        using var events = client.Listen();
        var execute = client.ExecuteAsync("query-status");
        var (_, id) = await peer.ReadCommandAsync();

        line ??= Concat("""{"return":{"status":"r"""u8, [0xC3, 0x28], Encoding.UTF8.GetBytes($"\"}},\"id\":{id}}}\n"));
        await peer.SendAsync(Concat(Encoding.UTF8.GetBytes(ScriptedEvent("FIRST") + "\n"), line)).Bounded();

        var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => execute.Bounded());
        var error = await Assert.ThrowsAsync<QmpParseException>(() => client.DisconnectAsync().Bounded());
        Assert.That(interrupted!.InnerException, Is.SameAs(error));
        Assert.That(error!.Message, Does.Contain("UTF-8").Or.Contain("Malformed JSON"));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That((await events.ReadAsync().Bounded()).Name, Is.EqualTo("FIRST"), "the event before the bad line was delivered");
        var ended = await Assert.ThrowsAsync<System.Threading.Channels.ChannelClosedException>(() => events.ReadAsync().AsTask().Bounded());
        Assert.That(ended!.InnerException, Is.SameAs(error), "then the listener ends with the root cause");
        await peer.ReadUntilClosedAsync().Bounded();
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.Name}: {error.Reason}");
    }

    private static string ScriptedEvent(string name) => "{\"event\":\"" + name + "\",\"timestamp\":{\"seconds\":1,\"microseconds\":2}}";

    private static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(part => part)];

    private static byte[] Concat(ReadOnlySpan<byte> a, byte[] b, ReadOnlySpan<byte> c) => [.. a, .. b, .. c];
}
