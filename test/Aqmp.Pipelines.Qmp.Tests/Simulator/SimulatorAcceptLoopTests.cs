using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Transports;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using CapturingLoggerProvider = Aqmp.Pipelines.Qmp.Tests.Client.QmpClientTests.CapturingLoggerProvider;

namespace Aqmp.Pipelines.Qmp.Tests.Simulator;

/// <summary>
/// The simulator's accept loop: transient accept errors are logged and retried with a backoff
/// (10 ms doubling, reset after a successful accept), stopping ends it even mid-backoff, and anything
/// unexpected ends it with that exception.
/// </summary>
public class SimulatorAcceptLoopTests
{
    private static SocketException Emfile => new((int)SocketError.TooManyOpenSockets);

    private static SocketException Econnaborted => new((int)SocketError.ConnectionAborted);

    [Test]
    public async Task Transient_accept_errors_are_logged_and_retried_with_a_doubling_backoff_and_the_next_real_client_is_served()
    {
        using var logs = new CapturingLoggerProvider();
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        await using var simulator = new QmpSimulator();
        var failures = new Queue<SocketException>([Emfile, Econnaborted, Emfile, Econnaborted]);
        var served = 0;
        var loop = new SimulatorAcceptLoop(
            token => failures.TryDequeue(out var failure) ? ValueTask.FromException<TransportConnection>(failure) : listener.AcceptAsync(cancellationToken: token),
            async (connection, token) =>
            {
                await using (connection)
                {
                    await simulator.ServeAsync(connection.Pipe, token);
                }

                served++;
                return false;
            },
            logs.Factory.CreateLogger<QmpSimulator>());

        var run = loop.RunAsync(CancellationToken.None);
        await using (var client = new QmpClient())
        {
            await client.ConnectAsync(listener.LocalEndPoint).Bounded();
            var status = await client.ExecuteAsync("query-status").Bounded();
            Assert.That(status.GetProperty("status").GetString(), Is.EqualTo("running"));
        }

        Assert.That(await run.Bounded(), Is.EqualTo(QmpSimulatorStopReason.Quit), "the serve function ended the loop");
        Assert.That(served, Is.EqualTo(1));
        Assert.That(RetryDelays(logs), Is.EqualTo(new[] { 10, 20, 40, 80 }));
    }

    [Test]
    public async Task The_backoff_starts_over_after_a_successful_accept_and_is_capped_at_one_second()
    {
        using var logs = new CapturingLoggerProvider();
        var script = new Queue<SocketException?>([.. Enumerable.Repeat(Emfile, 8), null, Emfile, null]);
        var loop = new SimulatorAcceptLoop(
            _ => script.Dequeue() is { } failure ? ValueTask.FromException<TransportConnection>(failure) : ValueTask.FromResult<TransportConnection>(null!),
            (_, _) => Task.FromResult(script.Count > 0),
            logs.Factory.CreateLogger<QmpSimulator>());

        Assert.That(await loop.RunAsync(CancellationToken.None).Bounded(), Is.EqualTo(QmpSimulatorStopReason.Quit));
        Assert.That(RetryDelays(logs), Is.EqualTo(new[] { 10, 20, 40, 80, 160, 320, 640, 1000, 10 }));
    }

    [Test]
    public async Task Stopping_ends_a_loop_that_is_backing_off_from_accept_errors()
    {
        using var logs = new CapturingLoggerProvider();
        using var stop = new CancellationTokenSource();
        var attempts = 0;
        var backingOff = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loop = new SimulatorAcceptLoop(
            _ =>
            {
                if (++attempts == 5)
                {
                    backingOff.TrySetResult();
                }

                return ValueTask.FromException<TransportConnection>(Emfile);
            },
            (_, _) => Task.FromResult(true),
            logs.Factory.CreateLogger<QmpSimulator>());

        var run = loop.RunAsync(stop.Token);
        await backingOff.Task.Bounded();
        Assert.That(run.IsCompleted, Is.False, "accept errors alone never end the loop");
        await stop.CancelAsync();

        Assert.That(await run.WaitAsync(TimeSpan.FromMilliseconds(500)), Is.EqualTo(QmpSimulatorStopReason.Stopped), "the backoff wait (160 ms by now) is interrupted");
    }

    [Test]
    public async Task An_accept_error_that_is_not_transient_ends_the_loop_with_that_exception()
    {
        using var logs = new CapturingLoggerProvider();
        var failure = new SocketException((int)SocketError.InvalidArgument);
        var loop = new SimulatorAcceptLoop(
            _ => ValueTask.FromException<TransportConnection>(failure),
            (_, _) => Task.FromResult(true),
            logs.Factory.CreateLogger<QmpSimulator>());

        var thrown = await Assert.ThrowsAsync<SocketException>(() => loop.RunAsync(CancellationToken.None).Bounded());

        Assert.That(thrown, Is.SameAs(failure));
    }

    [Test]
    public async Task A_disposed_listener_ends_the_loop_as_stopped_once_stopping_was_requested()
    {
        using var stop = new CancellationTokenSource();
        var loop = new SimulatorAcceptLoop(
            _ =>
            {
                stop.Cancel();
                return ValueTask.FromException<TransportConnection>(new SocketException((int)SocketError.OperationAborted));
            },
            (_, _) => Task.FromResult(true),
            NullLogger.Instance);

        Assert.That(await loop.RunAsync(stop.Token).Bounded(), Is.EqualTo(QmpSimulatorStopReason.Stopped));
    }

    private static int[] RetryDelays(CapturingLoggerProvider logs)
        => [.. logs.Messages(LogLevel.Warning).Select(message => int.Parse(Regex.Match(message, @"retrying in (\d+) ms").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))];
}
