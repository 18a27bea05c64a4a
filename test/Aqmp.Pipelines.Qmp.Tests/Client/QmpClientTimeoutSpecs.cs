using System.Diagnostics;
using System.Net.Sockets;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Qmp.Tests.Client;

/// <summary>
/// <see cref="QmpClientOptions.ConnectTimeout"/> and <see cref="QmpClientOptions.GreetingTimeout"/>
/// against loopback sockets: a server that accepts and says nothing, and a listener whose backlog
/// is full so that it never answers a connect. The caller's own cancellation always wins over them.
/// </summary>
public sealed class QmpClientTimeoutSpecs
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(300);

    [Test]
    public void By_default_the_connect_and_the_greeting_each_get_5_seconds()
    {
        Assert.That(QmpClientOptions.Default.ConnectTimeout, Is.EqualTo(TimeSpan.FromSeconds(5)));
        Assert.That(QmpClientOptions.Default.GreetingTimeout, Is.EqualTo(TimeSpan.FromSeconds(5)));
    }

    [TestCase(nameof(QmpClientOptions.ConnectTimeout), 0L)]
    [TestCase(nameof(QmpClientOptions.ConnectTimeout), -2L)]
    [TestCase(nameof(QmpClientOptions.ConnectTimeout), int.MaxValue + 1L)]
    [TestCase(nameof(QmpClientOptions.GreetingTimeout), 0L)]
    [TestCase(nameof(QmpClientOptions.GreetingTimeout), -2L)]
    [TestCase(nameof(QmpClientOptions.GreetingTimeout), int.MaxValue + 1L)]
    public void A_timeout_that_is_not_positive_or_too_long_is_rejected_by_the_constructor_naming_the_option(string option, long milliseconds)
    {
        var value = TimeSpan.FromMilliseconds(milliseconds);
        var options = option == nameof(QmpClientOptions.ConnectTimeout)
            ? new QmpClientOptions { ConnectTimeout = value }
            : new QmpClientOptions { GreetingTimeout = value };

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new QmpClient(options));

        Assert.That(error!.ParamName, Is.EqualTo(option));
    }

    [Test]
    public async Task Infinite_timeouts_are_accepted_and_a_silent_server_then_waits_for_the_callers_token()
    {
        using var server = LoopbackSockets.Listen(out var endPoint);
        await using var client = new QmpClient(new QmpClientOptions { ConnectTimeout = Timeout.InfiniteTimeSpan, GreetingTimeout = Timeout.InfiniteTimeSpan });
        using var caller = new CancellationTokenSource();

        var connecting = client.ConnectAsync(endPoint, cancellationToken: caller.Token);
        using var peer = await server.AcceptAsync().Bounded();
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.That(connecting.IsCompleted, Is.False);
        await caller.CancelAsync();

        var error = await Assert.CatchAsync<OperationCanceledException>(() => connecting.Bounded());
        Assert.That(error!.CancellationToken, Is.EqualTo(caller.Token));
    }

    [Test]
    public async Task A_server_that_accepts_and_never_greets_fails_ConnectAsync_after_the_GreetingTimeout_with_QmpNegotiationException_saying_another_client_may_hold_the_monitor()
    {
        using var server = LoopbackSockets.Listen(out var endPoint);
        await using var client = new QmpClient(new QmpClientOptions { GreetingTimeout = Short });

        var clock = Stopwatch.StartNew();
        var connecting = client.ConnectAsync(endPoint);
        using var peer = await server.AcceptAsync().Bounded();
        var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.Bounded());
        var elapsed = clock.Elapsed;

        GreetingTimeoutAssert.IsNoGreeting(error, "0.3 s");
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(Short - TimeSpan.FromMilliseconds(20)).And.LessThan(Short + TimeSpan.FromSeconds(3)));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await ReadToEndAsync(peer), Is.Zero, "the client sent nothing and closed the connection");
    }

    [Test]
    public async Task A_server_that_greets_and_never_answers_qmp_capabilities_fails_ConnectAsync_after_as_long_again_with_QmpNegotiationException()
    {
        using var server = LoopbackSockets.Listen(out var endPoint);
        await using var client = new QmpClient(new QmpClientOptions { GreetingTimeout = Short });

        var connecting = client.ConnectAsync(endPoint);
        using var peer = await server.AcceptAsync().Bounded();
        await peer.SendAsync(System.Text.Encoding.UTF8.GetBytes(ScriptedQmpPeer.GreetingJson([]) + "\n"), SocketFlags.None);
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.Bounded());
        var elapsed = clock.Elapsed;

        Assert.That(error!.Message, Does.Contain("no reply to qmp_capabilities within 0.3 s"));
        Assert.That(error.InnerException, Is.InstanceOf<TimeoutException>());
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(Short - TimeSpan.FromMilliseconds(50)).And.LessThan(Short + TimeSpan.FromSeconds(3)));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task The_greeting_timeout_counts_from_the_connection_so_events_before_the_greeting_do_not_extend_it()
    {
        using var server = LoopbackSockets.Listen(out var endPoint);
        await using var client = new QmpClient(new QmpClientOptions { GreetingTimeout = Short });

        var connecting = client.ConnectAsync(endPoint);
        using var peer = await server.AcceptAsync().Bounded();
        for (var i = 0; i < 6 && !connecting.IsCompleted; i++)
        {
            await peer.SendAsync(System.Text.Encoding.UTF8.GetBytes(ScriptedQmpPeer.EventJson("RESUME") + "\n"), SocketFlags.None);
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }

        var error = await Assert.ThrowsAsync<QmpNegotiationException>(() => connecting.Bounded());
        GreetingTimeoutAssert.IsNoGreeting(error, "0.3 s");
    }

    [Test]
    public async Task The_callers_cancellation_before_the_GreetingTimeout_raises_OperationCanceledException_carrying_the_callers_token()
    {
        using var server = LoopbackSockets.Listen(out var endPoint);
        await using var client = new QmpClient(new QmpClientOptions { GreetingTimeout = TimeSpan.FromSeconds(30) });
        using var caller = new CancellationTokenSource();

        var connecting = client.ConnectAsync(endPoint, cancellationToken: caller.Token);
        using var peer = await server.AcceptAsync().Bounded();
        caller.CancelAfter(Short);

        var error = await Assert.CatchAsync<OperationCanceledException>(() => connecting.Bounded());
        Assert.That(error!.CancellationToken, Is.EqualTo(caller.Token));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task A_listener_that_never_answers_fails_ConnectAsync_after_the_ConnectTimeout_with_ConnectException_wrapping_TimeoutException()
    {
        using var listener = await FullBacklogListener.StartAsync();
        await using var client = new QmpClient(new QmpClientOptions { ConnectTimeout = Short });

        var error = await Assert.ThrowsAsync<ConnectException>(() => client.ConnectAsync(listener.Address).Bounded());

        Assert.That(error, Is.Not.InstanceOf<QmpNegotiationException>());
        Assert.That(error!.ErrorMessage, Is.EqualTo(ConnectException.ConnectionPhase));
        Assert.That(error.InnerException, Is.InstanceOf<TimeoutException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public void The_clients_ConnectTimeout_replaces_the_one_in_its_session_options()
    {
        var options = new QmpClientOptions { ConnectTimeout = Short, Session = new PipeProtocolOptions { ConnectTimeout = TimeSpan.FromMinutes(1) } };

        Assert.That(options.SessionWithTimeouts().ConnectTimeout, Is.EqualTo(Short));
    }

    /// <summary>Reads until the client closes; returns how many bytes it had sent.</summary>
    private static async Task<int> ReadToEndAsync(Socket peer)
    {
        var total = 0;
        var buffer = new byte[4096];
        int read;
        while ((read = await peer.ReceiveAsync(buffer, SocketFlags.None).Bounded()) > 0)
        {
            total += read;
        }

        return total;
    }
}
