using System.Net.Sockets;
using System.Text.RegularExpressions;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;
using Microsoft.Extensions.Logging;
using Moq;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// What a session logs, after the seed: a logger per class (and per named connection), runstate
/// transitions and message traffic at Debug, the peer's EOF at Information, failures at Error.
/// </summary>
public class LoggingTests : SessionSpecBase
{
    [Test]
    public async Task The_logger_category_is_the_protocol_class_full_name()
    {
        var log = new LogCapture();

        var protocol = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));

        log.Factory.Verify(f => f.CreateLogger("Aqmp.Pipelines.Tests.Support.LineProtocol"), Times.Once());
        log.Factory.VerifyNoOtherCalls();
    }

    [Test]
    public async Task A_named_connection_logs_to_a_child_category_of_the_class()
    {
        var log = new LogCapture();

        var protocol = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object, name: "left"));

        log.Factory.Verify(f => f.CreateLogger("Aqmp.Pipelines.Tests.Support.LineProtocol.left"), Times.Once());
        log.Factory.VerifyNoOtherCalls();
    }

    [Test]
    public async Task Runstate_transitions_are_logged_at_Debug_in_order()
    {
        var log = new LogCapture();
        var left = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));

        await SessionSpecKit.OpenPairAsync(left, right);
        await left.DisconnectAsync().Bounded();

        var entries = log.Entries;
        var steps = new[]
        {
            (From: "Idle", To: "Connecting"),
            (From: "Connecting", To: "Running"),
            (From: "Running", To: "Disconnecting"),
            (From: "Disconnecting", To: "Idle"),
        };
        var positions = new List<int>();
        foreach (var (from, to) in steps)
        {
            var pattern = new Regex($@"\b{from}\b.*\b{to}\b");
            var index = entries.FindIndex(e => pattern.IsMatch(e.Text));
            Assert.That(index, Is.Not.EqualTo(-1), $"a log entry for {from} -> {to}");
            Assert.That(entries[index].Level, Is.EqualTo(LogLevel.Debug), $"{from} -> {to}: {entries[index].Text}");
            positions.Add(index);
        }

        Assert.That(positions, Is.Ordered.Ascending);
    }

    [Test]
    public async Task An_inbound_line_is_logged_at_Debug_with_an_incoming_arrow()
    {
        var log = new LogCapture();
        var left = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        await SessionSpecKit.OpenPairAsync(left, right);

        await right.SendLineAsync("hello").Bounded();
        Assert.That(await left.NextLineAsync().Bounded(), Is.EqualTo("hello"));

        var entry = log.Entries.Single(e => e.Text == "<-- hello");
        Assert.That(entry.Level, Is.EqualTo(LogLevel.Debug));
    }

    [Test]
    public async Task An_outbound_line_is_logged_at_Debug_with_an_outgoing_arrow()
    {
        var log = new LogCapture();
        var left = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        await SessionSpecKit.OpenPairAsync(left, right);

        await left.SendLineAsync("hello").Bounded();
        Assert.That(await right.NextLineAsync().Bounded(), Is.EqualTo("hello"));

        var entry = log.Entries.Single(e => e.Text == "--> hello");
        Assert.That(entry.Level, Is.EqualTo(LogLevel.Debug));
    }

    [Test]
    public async Task Handshake_traffic_is_logged_with_the_same_arrows()
    {
        var log = new LogCapture();
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));
        protocol.Handshake = async (p, handshake, ct) =>
        {
            await handshake.SendAsync("greeting", ct);
            await handshake.ReceiveAsync(ct);
        };
        await SessionSpecKit.WriteAsync(peer.Output, "reply\n");

        await protocol.OpenAsync(mine).Bounded();

        using (Assert.EnterMultipleScope())
        {
            Assert.That(log.Entries.Single(e => e.Text == "--> greeting").Level, Is.EqualTo(LogLevel.Debug));
            Assert.That(log.Entries.Single(e => e.Text == "<-- reply").Level, Is.EqualTo(LogLevel.Debug));
        }
    }

    [Test]
    public async Task The_peer_closing_is_logged_at_Information_not_as_an_error()
    {
        var log = new LogCapture();
        var (mine, peer) = SessionSpecKit.CrossedPipes();
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));
        await protocol.OpenAsync(mine).Bounded();

        await peer.Output.CompleteAsync().Bounded();
        await SessionSpecKit.WaitUntilAsync(() => protocol.SessionEnded.Ran, "the session has ended");

        var entries = log.Entries;
        Assert.That(
            entries.Where(e => e.Level == LogLevel.Information).Select(e => e.Text),
            Has.Some.Contains(nameof(EndOfStreamException)),
            "the end of the stream is reported at Information");
        Assert.That(entries.Where(e => e.Level >= LogLevel.Error).Select(e => e.Text), Is.Empty, "EOF is not an error");
        await Assert.ThrowsAsync<EndOfStreamException>(() => protocol.DisconnectAsync().Bounded());
    }

    [Test]
    public async Task A_failure_in_OnMessageAsync_is_logged_at_Error_with_the_exception()
    {
        var log = new LogCapture();
        var boom = new InvalidOperationException("handler exploded");
        var left = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object)
        {
            OnLine = (_, _) => throw boom,
        });
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        await SessionSpecKit.OpenPairAsync(left, right);

        await right.SendLineAsync("hello").Bounded();
        await SessionSpecKit.WaitUntilAsync(() => log.Entries.Any(e => e.Level == LogLevel.Error), "an error is logged");

        var error = log.Entries.First(e => e.Level == LogLevel.Error);
        Assert.That(error.Exception, Is.SameAs(boom));
        Assert.That(error.Text, Does.Contain("handler exploded"));
        var raised = await Assert.ThrowsAsync<InvalidOperationException>(() => left.DisconnectAsync().Bounded());
        Assert.That(raised, Is.SameAs(boom), "the hang-up raises the root cause");
    }

    [Test]
    public async Task A_failed_connect_is_logged_at_Error_with_the_phase_and_the_exception()
    {
        var log = new LogCapture();
        using var refusing = SessionSpecKit.BindWithoutListening(out var endPoint);
        var client = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));

        var error = await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(endPoint).Bounded());

        var entry = log.Entries.Single(e => e.Level == LogLevel.Error);
        Assert.That(entry.Exception, Is.SameAs(error!.InnerException));
        Assert.That(entry.Exception, Is.InstanceOf<SocketException>());
        Assert.That(entry.Text, Does.StartWith("Failed to establish connection: "));
    }

    [Test]
    public async Task A_throwing_RunstateChanged_handler_is_logged_at_Error_and_the_transition_stands()
    {
        var log = new LogCapture();
        var oops = new InvalidOperationException("bad handler");
        var protocol = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));
        protocol.RunstateChanged += (_, _) => throw oops;
        var watched = SessionSpecKit.CollectAsync(protocol.WatchRunstateAsync(), 2);

        await protocol.DisconnectAsync().Bounded();

        Assert.That(protocol.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await watched.Bounded(), Is.EqualTo(new[] { Runstate.Disconnecting, Runstate.Idle }));
        Assert.That(log.Entries.Count(e => e.Level == LogLevel.Error && ReferenceEquals(e.Exception, oops)), Is.EqualTo(2));
    }

    [Test]
    public async Task Nothing_is_logged_when_the_logger_is_disabled()
    {
        var log = new LogCapture(enabled: false);
        var left = Own(new LineProtocol(SessionSpecKit.Quick, log.Factory.Object));
        var right = Own(new LineProtocol(SessionSpecKit.Quick));
        await SessionSpecKit.OpenPairAsync(left, right);

        await left.SendLineAsync("hello").Bounded();
        Assert.That(await right.NextLineAsync().Bounded(), Is.EqualTo("hello"));
        await left.DisconnectAsync().Bounded();

        Assert.That(log.Entries, Is.Empty);
    }

    [Test]
    public async Task Without_a_logger_factory_a_session_runs_normally()
    {
        var left = Own(new LineProtocol(SessionSpecKit.Quick, loggerFactory: null));
        var right = Own(new LineProtocol(SessionSpecKit.Quick, loggerFactory: null));
        await SessionSpecKit.OpenPairAsync(left, right);

        await left.SendLineAsync("hello").Bounded();

        Assert.That(await right.NextLineAsync().Bounded(), Is.EqualTo("hello"));
    }

    private sealed record LogEntry(LogLevel Level, string Text, Exception? Exception);

    /// <summary>A Moq logger factory whose single logger records every ILogger.Log call.</summary>
    private sealed class LogCapture
    {
        public LogCapture(bool enabled = true)
        {
            Logger.Setup(l => l.IsEnabled(It.IsAny<LogLevel>())).Returns(enabled);
            Factory.Setup(f => f.CreateLogger(It.IsAny<string>())).Returns(Logger.Object);
        }

        public Mock<ILoggerFactory> Factory { get; } = new();

        public Mock<ILogger> Logger { get; } = new();

        /// <summary>Every Log call so far, in order, with the formatted state (state.ToString()).</summary>
        public List<LogEntry> Entries =>
            Logger.Invocations
                .ToArray()
                .Where(i => i.Method.Name == nameof(ILogger.Log))
                .Select(i => new LogEntry((LogLevel)i.Arguments[0]!, i.Arguments[2]?.ToString() ?? string.Empty, (Exception?)i.Arguments[3]))
                .ToList();
    }
}
