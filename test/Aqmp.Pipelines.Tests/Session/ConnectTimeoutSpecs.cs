using System.Diagnostics;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Testing;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// <see cref="PipeProtocolOptions.ConnectTimeout"/>: it bounds connecting the transport (socket,
/// then TLS) and nothing after it; running out is a connection-phase <see cref="ConnectException"/>
/// wrapping a <see cref="TimeoutException"/>, while the caller's own cancellation stays an
/// <see cref="OperationCanceledException"/> carrying the caller's token. Only loopback is used: a
/// listener whose backlog is full never answers a connect.
/// </summary>
public class ConnectTimeoutSpecs : SessionSpecBase
{
    private static readonly TimeSpan Limit = TimeSpan.FromMilliseconds(300);

    private static PipeProtocolOptions WithConnectTimeout(TimeSpan limit) => SessionSpecKit.Quick with { ConnectTimeout = limit };

    [Test]
    public void By_default_there_is_no_connect_timeout()
    {
        Assert.That(PipeProtocolOptions.Default.ConnectTimeout, Is.EqualTo(Timeout.InfiniteTimeSpan));
    }

    [TestCase(0)]
    [TestCase(-2)]
    [TestCase(int.MaxValue + 1L)]
    public void A_ConnectTimeout_that_is_not_positive_or_too_long_is_rejected_naming_the_option(long milliseconds)
    {
        var options = new PipeProtocolOptions { ConnectTimeout = TimeSpan.FromMilliseconds(milliseconds) };

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LineProtocol(options));

        Assert.That(error!.ParamName, Is.EqualTo(nameof(PipeProtocolOptions.ConnectTimeout)));
    }

    [Test]
    public void An_infinite_ConnectTimeout_is_accepted()
    {
        Assert.DoesNotThrow(() => new PipeProtocolOptions { ConnectTimeout = Timeout.InfiniteTimeSpan }.Validate());
    }

    [Test]
    public async Task A_connect_that_gets_no_answer_within_ConnectTimeout_raises_ConnectException_wrapping_TimeoutException_and_ends_Idle()
    {
        using var listener = await FullBacklogListener.StartAsync();
        var client = Own(new LineProtocol(WithConnectTimeout(Limit)));

        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(listener.EndPoint).Bounded());
        var elapsed = clock.Elapsed;

        using (Assert.EnterMultipleScope())
        {
            Assert.That(error!.ErrorMessage, Is.EqualTo(ConnectException.ConnectionPhase));
            Assert.That(error.InnerException, Is.InstanceOf<TimeoutException>());
            Assert.That(error.Message, Does.Contain($"No connection to {listener.Address} within 0.3 s"));
            Assert.That(elapsed, Is.GreaterThanOrEqualTo(Limit - TimeSpan.FromMilliseconds(20)).And.LessThan(Limit + TimeSpan.FromSeconds(3)));
            Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        }
    }

    [Test]
    public async Task A_TLS_handshake_the_server_never_answers_is_bounded_by_ConnectTimeout_too()
    {
        using var silent = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(WithConnectTimeout(Limit)));

        var connecting = client.ConnectAsync(endPoint, TestCertificates.ClientOptions());
        using var peer = await silent.AcceptAsync().Bounded();
        var error = await Assert.ThrowsAsync<ConnectException>(() => connecting.Bounded());

        Assert.That(error!.ErrorMessage, Is.EqualTo(ConnectException.ConnectionPhase));
        Assert.That(error.InnerException, Is.InstanceOf<TimeoutException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task The_callers_cancellation_before_the_ConnectTimeout_raises_OperationCanceledException_carrying_the_callers_token()
    {
        using var listener = await FullBacklogListener.StartAsync();
        var client = Own(new LineProtocol(WithConnectTimeout(TimeSpan.FromSeconds(30))));
        using var caller = new CancellationTokenSource(Limit);

        var error = await Assert.CatchAsync<OperationCanceledException>(() => client.ConnectAsync(listener.EndPoint, cancellationToken: caller.Token).Bounded());

        Assert.That(error!.CancellationToken, Is.EqualTo(caller.Token));
        Assert.That(error, Is.Not.InstanceOf<ConnectException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task ConnectTimeout_does_not_bound_the_handshake_that_follows_the_connection()
    {
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(WithConnectTimeout(TimeSpan.FromMilliseconds(100))));
        var handshakeStarted = SessionSpecKit.StallHandshake(client);
        using var caller = new CancellationTokenSource();

        var connecting = client.ConnectAsync(endPoint, cancellationToken: caller.Token);
        using var peer = await listener.AcceptAsync().Bounded();
        await handshakeStarted.Bounded();
        await Task.Delay(400);

        Assert.That(connecting.IsCompleted, Is.False, "the stalled handshake still waits, well past the connect timeout");
        await caller.CancelAsync();
        var error = await Assert.CatchAsync<OperationCanceledException>(() => connecting.Bounded());
        Assert.That(error!.CancellationToken, Is.EqualTo(caller.Token));
    }

    [Test]
    public async Task After_a_connect_timeout_the_same_object_connects_successfully()
    {
        using var full = await FullBacklogListener.StartAsync();
        using var listener = SessionSpecKit.ListenRaw(out var endPoint);
        var client = Own(new LineProtocol(WithConnectTimeout(Limit)));
        await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(full.EndPoint).Bounded());

        await client.ConnectAsync(endPoint).Bounded();
        using var peer = await listener.AcceptAsync().Bounded();

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        await client.SendLineAsync("hello").Bounded();
        Assert.That(await SessionSpecKit.ReadLineAsync(peer), Is.EqualTo("hello"));
    }
}
