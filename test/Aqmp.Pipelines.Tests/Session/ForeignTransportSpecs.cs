using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// A session opened on a <see cref="TransportConnection"/> implemented outside the library (its
/// output is a plain <see cref="PipeWriter"/>): it sends and receives through that connection's
/// pipe as through any other, and releases it exactly once:
/// closed after a graceful disconnect, aborted after a failed one.
/// </summary>
public class ForeignTransportSpecs : SessionSpecBase
{
    [Test]
    public async Task A_session_on_a_foreign_connection_exchanges_lines_in_order_both_ways()
    {
        var (mine, theirs) = SessionSpecKit.CrossedPipes();
        var connection = new RecordingConnection(mine);
        var client = Own(new LineProtocol(SessionSpecKit.Quick, name: "client"));
        var server = Own(new LineProtocol(SessionSpecKit.Quick, name: "server"));
        await Task.WhenAll(client.OpenAsync(connection), server.OpenAsync(theirs)).Bounded();

        var lines = Enumerable.Range(0, 500).Select(i => $"line {i}").ToArray();
        foreach (var line in lines)
        {
            await client.SendLineAsync(line);
        }

        await server.SendLineAsync("back");

        Assert.That(await server.NextLinesAsync(lines.Length), Is.EqualTo(lines));
        Assert.That(await client.NextLineAsync(), Is.EqualTo("back"));
    }

    [Test]
    public async Task A_graceful_disconnect_delivers_what_was_sent_then_closes_the_foreign_connection_once_and_never_aborts_it()
    {
        var (mine, theirs) = SessionSpecKit.CrossedPipes();
        var connection = new RecordingConnection(mine);
        var client = Own(new LineProtocol(SessionSpecKit.Quick, name: "client"));
        await client.OpenAsync(connection).Bounded();
        await client.SendLinesAsync(new[] { "a", "b", "c" });

        await client.DisconnectAsync().Bounded();

        Assert.That(await SessionSpecKit.ReadToEndAsync(theirs.Input), Is.EqualTo("a\nb\nc\n"));
        Assert.That((connection.CloseCalls, connection.AbortCalls), Is.EqualTo((1, 0)));
    }

    [Test]
    public async Task A_session_that_fails_aborts_the_foreign_connection_once_and_never_closes_it()
    {
        var (mine, theirs) = SessionSpecKit.CrossedPipes();
        var connection = new RecordingConnection(mine);
        var client = Own(new LineProtocol(SessionSpecKit.Quick, name: "client"));
        await client.OpenAsync(connection).Bounded();

        await theirs.Output.CompleteAsync(); // the peer goes away: the session ends with an error
        await SessionSpecKit.WaitUntilAsync(() => client.Runstate == Runstate.Idle || client.Runstate == Runstate.Disconnecting, "the session notices the peer has gone");
        await Assert.CatchAsync<EndOfStreamException>(() => client.DisconnectAsync().Bounded());

        Assert.That((connection.CloseCalls, connection.AbortCalls), Is.EqualTo((0, 1)));
    }
}
