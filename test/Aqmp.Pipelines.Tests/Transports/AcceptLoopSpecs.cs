using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

/// <summary>
/// The accept loop: transient errors are reported and retried after a doubling backoff capped at
/// one second and reset by a success; the handler ends it by returning false; stopping ends it even
/// mid-backoff; any other error ends it with that error.
/// </summary>
public class AcceptLoopSpecs
{
    private static SocketException Emfile => new((int)SocketError.TooManyOpenSockets);

    [TestCase(SocketError.TooManyOpenSockets, true)]
    [TestCase(SocketError.ConnectionAborted, true)]
    [TestCase(SocketError.NoBufferSpaceAvailable, true)]
    [TestCase(SocketError.InvalidArgument, false)]
    [TestCase(SocketError.AccessDenied, false)]
    public void Resource_and_aborted_client_errors_are_transient_and_the_others_are_not(SocketError error, bool transient)
        => Assert.That(AcceptLoop.IsTransient(new SocketException((int)error)), Is.EqualTo(transient));

    [Test]
    public async Task Transient_errors_are_reported_with_a_backoff_doubling_to_one_second_and_reset_by_a_success()
    {
        var script = new Queue<SocketException?>([.. Enumerable.Repeat(Emfile, 8), null, Emfile, null]);
        var waits = new List<double>();
        var loop = new AcceptLoop<int>(
            _ => script.Dequeue() is { } failure ? ValueTask.FromException<int>(failure) : ValueTask.FromResult(1),
            (_, _) => ValueTask.FromResult(script.Count > 0))
        {
            TransientError = (_, wait) => waits.Add(wait.TotalMilliseconds),
        };

        Assert.That(await loop.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)), Is.False, "the handler ended it");
        Assert.That(waits, Is.EqualTo(new double[] { 10, 20, 40, 80, 160, 320, 640, 1000, 10 }));
    }

    [Test]
    public async Task Stopping_ends_the_loop_during_a_backoff_and_during_a_pending_accept()
    {
        using var stop = new CancellationTokenSource();
        var loop = new AcceptLoop<int>(_ => ValueTask.FromException<int>(Emfile), (_, _) => ValueTask.FromResult(true));
        var run = loop.RunAsync(stop.Token);
        await Task.Delay(50);
        Assert.That(run.IsCompleted, Is.False, "accept errors alone never end it");
        await stop.CancelAsync();
        Assert.That(await run.Bounded(), Is.True);

        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var stop2 = new CancellationTokenSource();
        var waiting = new AcceptLoop<Socket>(listener.AcceptSocketAsync, (_, _) => ValueTask.FromResult(true)).RunAsync(stop2.Token);
        await stop2.CancelAsync();
        Assert.That(await waiting.Bounded(), Is.True);
    }

    [Test]
    public async Task An_error_that_is_not_transient_ends_the_loop_with_that_error()
    {
        var failure = new SocketException((int)SocketError.InvalidArgument);
        var loop = new AcceptLoop<int>(_ => ValueTask.FromException<int>(failure), (_, _) => ValueTask.FromResult(true));

        Assert.That(await Assert.ThrowsAsync<SocketException>(() => loop.RunAsync(CancellationToken.None).Bounded()), Is.SameAs(failure));
    }

    [Test]
    public async Task AcceptSocketAsync_returns_the_connected_socket_for_the_caller_to_own()
    {
        using var listener = await SocketListener.BindAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accepted = listener.AcceptSocketAsync().AsTask();
        await client.ConnectAsync(listener.LocalEndPoint).Bounded();

        using var socket = await accepted.Bounded();

        Assert.That(socket.Connected, Is.True);
        Assert.That(socket.RemoteEndPoint, Is.EqualTo(client.LocalEndPoint));
    }
}
