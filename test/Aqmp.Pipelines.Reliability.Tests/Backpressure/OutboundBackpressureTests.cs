using System.Diagnostics;
using System.Net.Sockets;
using Aqmp.Pipelines.Reliability.Tests.DyingPeers;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Backpressure;

/// <summary>
/// A peer that stops reading while a producer sends 1,000,000 messages through a core line session
/// over a Unix-domain socket: <c>SendAsync</c> stops completing once the configured bounds are full
/// (the send pipe's pause threshold plus one batch, and the kernel's socket
/// buffers), managed memory stays bounded meanwhile, and once the peer reads, every message arrives
/// exactly once and in order. With a tight <see cref="PipeProtocolOptions"/> the bound shrinks with
/// the options. A <c>DisconnectAsync</c> while the peer never reads waits for the drain until its
/// token fires (there is no drain timeout), then discards what was not sent; a peer that dies
/// instead of reading makes it raise the socket's error.
/// </summary>
/// <remarks>
/// The session runs on a socket the test connects itself (<c>OpenAsync(Socket)</c>) so that its
/// kernel send buffer is small and known: 16 KiB asked, which Linux doubles. Non-parallelizable:
/// it measures the managed heap, which is process-wide.
/// </remarks>
[NonParallelizable]
public sealed class OutboundBackpressureTests
{
    private const int Volume = 1_000_000;

    // "m" and seven digits, then the line feed.
    private const int FrameBytes = 9;
    private const int KernelBufferRequest = 16 * 1024;

    // The allowance for the buffer pools' granularity and the runtime's incidental allocations. The
    // heap is process-wide: run alone, the tight case grows 0.08–0.7 MB (12 runs); after the rest of
    // the suite typically 1.2–1.7 MB, and once in about ten full runs 6.4 MB (not traced: the
    // runtime's and other fixtures' leftovers count too, even in the quietest of five
    // full-collection readings). Still a quarter of what retaining the messages would cost:
    // 1,000,000 strings of 8 characters are ~32 MB before any queue around them.
    private const long MemorySlack = 8 * 1024 * 1024;

    private static readonly PipeProtocolOptions Tight = new()
    {
        OutboundBatchBytes = 4 * 1024,
        SendPauseThreshold = 32 * 1024,
        SendResumeThreshold = 16 * 1024,
        MinimumSegmentSize = 4 * 1024,
    };

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    public static IEnumerable<TestCaseData> OptionSets()
    {
        yield return new TestCaseData(PipeProtocolOptions.Default, "default").SetName("With_the_default_options_a_peer_that_stops_reading_stalls_SendAsync_within_the_pipe_and_kernel_bounds_memory_stays_bounded_and_all_1_000_000_messages_arrive_in_order_once_it_reads");
        yield return new TestCaseData(Tight, "tight").SetName("With_tight_options_the_stall_bound_shrinks_with_the_pause_threshold_and_batch_size_and_all_1_000_000_messages_still_arrive_in_order");
    }

    [TestCaseSource(nameof(OptionSets))]
    public async Task A_peer_that_stops_reading(PipeProtocolOptions options, string label)
    {
        using var peer = RawSocketPeer.ListenUnix(_socketFiles);
        var baselineBytes = ProcessResources.SettledManagedBytes();
        var clock = Stopwatch.StartNew();
        await using var client = new LineProtocol(options, name: "producer");
        var (connection, kernelBytes) = await OpenWithSmallKernelBuffersAsync(client, peer);
        using var _ = connection;

        var accepted = 0;
        var producer = ProduceAsync(client, count => Volatile.Write(ref accepted, count));
        var stalledAt = await BackpressureStall.UntilStalledAsync(() => Volatile.Read(ref accepted), Volume, TimeSpan.FromMilliseconds(300));

        // The bound: what the send pipe holds before its flush waits (the pause threshold plus one
        // batch), plus what the kernel buffers hold, plus one segment in the adapter. Messages are
        // framed as they are sent: there is no queue of message objects.
        var bufferedBytes = options.SendPauseThreshold + options.OutboundBatchBytes + kernelBytes + options.MinimumSegmentSize;
        var bound = (bufferedBytes / FrameBytes) + 1;
        // The stall holds while sampling (checked below), so the quietest reading is what it costs.
        var grownBytes = await ProcessResources.QuietestManagedBytesAsync(5, TimeSpan.FromMilliseconds(100)) - baselineBytes;
        var memoryBound = options.SendPauseThreshold + options.OutboundBatchBytes + MemorySlack;
        TestContext.Progress.WriteLine(
            $"{label}: SendAsync stalled after {stalledAt:N0} messages ({stalledAt * (long)FrameBytes:N0} bytes) against a bound of {bound:N0} " +
            $"(({options.SendPauseThreshold:N0} pause + {options.OutboundBatchBytes:N0} batch + {kernelBytes:N0} kernel + {options.MinimumSegmentSize:N0} segment bytes) / {FrameBytes}); " +
            $"managed heap grew {grownBytes:N0} bytes while stalled (bound {memoryBound:N0})");

        Assert.That(stalledAt, Is.LessThan(Volume), "SendAsync waits while the peer does not read");
        Assert.That(stalledAt * (long)FrameBytes, Is.GreaterThanOrEqualTo(options.SendPauseThreshold), "the send pipe fills to its pause threshold before a sender waits");
        Assert.That(stalledAt, Is.LessThanOrEqualTo(bound), $"at most the pipe's pause threshold, one batch, one segment and the kernel buffers ({bufferedBytes:N0} bytes) of messages are accepted");
        Assert.That(grownBytes, Is.LessThan(memoryBound), $"the managed heap holds at most the pause threshold and one batch, plus {MemorySlack:N0} bytes of slack, whatever the volume ({Volume:N0} messages)");
        Assert.That(Volatile.Read(ref accepted), Is.EqualTo(stalledAt), "still stalled after the collection");

        var reading = Task.Run(() => ReadAndVerifyAsync(connection.Socket, Volume));
        await producer.WaitAsync(TimeSpan.FromSeconds(30));
        var received = await reading.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(received, Is.EqualTo(Volume), "every message arrived, once, in order");

        var closed = ReadToEndThenCloseAsync(connection);
        await client.DisconnectAsync().Bounded();
        Assert.That(await closed.Bounded(), Is.Empty, "nothing after the last message");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        TestContext.Progress.WriteLine($"{label}: {Volume:N0} messages delivered in {clock.Elapsed.TotalSeconds:F2} s; peak working set {ProcessResources.PeakWorkingSet() / (1024 * 1024):N0} MiB");
    }

    [Test]
    public async Task DisconnectAsync_while_the_peer_never_reads_waits_for_the_drain_until_its_token_fires_then_discards_the_unsent_messages_and_reaches_Idle()
    {
        using var peer = RawSocketPeer.ListenUnix(_socketFiles);
        var sockets = LeakChecks.OpenSockets();
        await using var client = new LineProtocol(Tight, name: "producer");
        var (connection, _) = await OpenWithSmallKernelBuffersAsync(client, peer);
        using var _ = connection;
        var accepted = 0;
        var producer = ProduceAsync(client, count => Volatile.Write(ref accepted, count));
        var stalledAt = await BackpressureStall.UntilStalledAsync(() => Volatile.Read(ref accepted), Volume, TimeSpan.FromMilliseconds(200));
        Assert.That(stalledAt, Is.LessThan(Volume));

        using var giveUp = new CancellationTokenSource();
        var disconnect = client.DisconnectAsync(giveUp.Token);
        var refused = await Assert.ThrowsAsync<StateException>(() => producer.Bounded());
        Assert.That(refused!.InnerException, Is.Null, "no error ended the session: the waiting sender is refused because it is disconnecting");

        // No drain timeout: the linger timeout only starts once every byte is delivered.
        await Task.Delay(500);
        Assert.That(disconnect.IsCompleted, Is.False, "DisconnectAsync waits for the peer to read what was queued");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Disconnecting));

        var clock = Stopwatch.StartNew();
        await giveUp.CancelAsync();
        await Assert.CatchAsync<OperationCanceledException>(() => disconnect.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), "the abandoned drain still ends in Idle");

        // What reached the peer is an in-order prefix of the stream; the rest was discarded.
        var received = await ReadPrefixToEndAsync(connection.Socket);
        TestContext.Progress.WriteLine($"drain abandoned after {clock.ElapsedMilliseconds} ms: {stalledAt:N0} messages were accepted, {received:N0} reached the peer, {stalledAt - received:N0} were discarded");
        Assert.That(received, Is.LessThan(stalledAt), "messages queued but not sent are discarded, not delivered later");
        connection.Socket.Close();
        await LeakChecks.UntilSocketsReturnToAsync(sockets, "after the abandoned drain");
    }

    [Test]
    public async Task DisposeAsync_while_the_peer_never_reads_gives_the_drain_DisposeDrainTimeout_then_aborts_and_reaches_Idle()
    {
        // `await using` cannot hang on a peer that stays connected without reading: the drain is bounded.
        var options = Tight with { DisposeDrainTimeout = TimeSpan.FromMilliseconds(500) };
        using var peer = RawSocketPeer.ListenUnix(_socketFiles);
        var sockets = LeakChecks.OpenSockets();
        var client = new LineProtocol(options, name: "producer");
        var (connection, _) = await OpenWithSmallKernelBuffersAsync(client, peer);
        var accepted = 0;
        var producer = ProduceAsync(client, count => Volatile.Write(ref accepted, count));
        await BackpressureStall.UntilStalledAsync(() => Volatile.Read(ref accepted), Volume, TimeSpan.FromMilliseconds(200));

        var clock = Stopwatch.StartNew();
        var dispose = client.DisposeAsync().AsTask();
        await Assert.ThrowsAsync<StateException>(() => producer.Bounded());
        await Task.Delay(200);
        Assert.That(dispose.IsCompleted, Is.False, "DisposeAsync drains first, like DisconnectAsync");

        await dispose.Bounded();
        TestContext.Progress.WriteLine($"DisposeAsync with a peer that never reads returned after {clock.ElapsedMilliseconds} ms (DisposeDrainTimeout 500 ms)");
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "bounded by DisposeDrainTimeout, not by the peer");
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle), "the abandoned drain is logged, not raised, and the object is Idle");
        connection.Dispose();
        await LeakChecks.UntilSocketsReturnToAsync(sockets, "after the bounded dispose");
    }

    [Test]
    public async Task DisconnectAsync_while_the_peer_dies_instead_of_reading_raises_the_sockets_IOException_and_reaches_Idle()
    {
        using var peer = RawSocketPeer.ListenUnix(_socketFiles);
        await using var client = new LineProtocol(Tight, name: "producer");
        var (connection, _) = await OpenWithSmallKernelBuffersAsync(client, peer);
        var accepted = 0;
        var producer = ProduceAsync(client, count => Volatile.Write(ref accepted, count));
        var stalledAt = await BackpressureStall.UntilStalledAsync(() => Volatile.Read(ref accepted), Volume, TimeSpan.FromMilliseconds(200));
        Assert.That(stalledAt, Is.LessThan(Volume));

        var disconnect = client.DisconnectAsync();
        await Assert.ThrowsAsync<StateException>(() => producer.Bounded());
        await Task.Delay(100);
        Assert.That(disconnect.IsCompleted, Is.False, "the drain waits for the peer");

        connection.Socket.Close(); // with bytes unread: the connection is reset
        var error = await Assert.CatchAsync<Exception>(() => disconnect.Bounded());
        TestContext.Progress.WriteLine($"a peer dying during the drain: DisconnectAsync raised {error!.GetType().Name} <- {error.InnerException?.GetType().Name}({(error.InnerException as SocketException)?.SocketErrorCode}): {error.Message}");
        // The kernel reports the failure to one call only; should the blocked send take it, the read
        // loop sees a plain end of stream, and the transport reports the send's failure as the cause.
        Assert.That(error, Is.TypeOf<IOException>(), "the socket's error is the root cause, whichever call took it");
        {
            Assert.That(error.InnerException, Is.TypeOf<SocketException>());
            Assert.That(((SocketException)error.InnerException!).SocketErrorCode, Is.EqualTo(SocketError.ConnectionReset).Or.EqualTo(SocketError.Shutdown), "a reset or a broken pipe");
        }

        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(client.SessionEnded.RootCause, Is.SameAs(error));
        connection.Dispose();
    }

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    /// <summary>
    /// Connects a Unix-domain socket with a small send buffer to <paramref name="peer"/>, gives the
    /// accepted end a small receive buffer, and opens <paramref name="client"/> on it. Returns the
    /// peer's end and the kernel's buffer bytes on the path (as the kernel reports them).
    /// </summary>
    private static async Task<(RawConnection Peer, long KernelBytes)> OpenWithSmallKernelBuffersAsync(LineProtocol client, RawSocketPeer peer)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { SendBufferSize = KernelBufferRequest };
        await socket.ConnectAsync(peer.EndPoint).Bounded();
        var connection = await peer.AcceptAsync();
        connection.Socket.ReceiveBufferSize = KernelBufferRequest;
        long kernelBytes = socket.SendBufferSize + connection.Socket.ReceiveBufferSize;
        await client.OpenAsync(socket).Bounded();
        return (connection, kernelBytes);
    }

    private static string Message(int i) => $"m{i:D7}";

    /// <summary>Sends the volume, one awaited SendAsync at a time, reporting the count accepted.</summary>
    private static Task ProduceAsync(LineProtocol client, Action<int> report) => Task.Run(async () =>
    {
        for (var i = 0; i < Volume; i++)
        {
            await client.SendLineAsync(Message(i));
            report(i + 1);
        }
    });

    /// <summary>Reads exactly <paramref name="count"/> messages, checking each byte against the expected sequence; returns the count.</summary>
    private static async Task<int> ReadAndVerifyAsync(Socket socket, int count)
    {
        var buffer = new byte[64 * 1024];
        var expected = new byte[FrameBytes];
        var index = 0;
        var position = 0;
        Format(index, expected);
        while (index < count)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory());
            if (read == 0)
            {
                Assert.Fail($"The stream ended after {index:N0} messages.");
            }

            for (var k = 0; k < read; k++)
            {
                if (index >= count)
                {
                    Assert.Fail($"Bytes after the last message ({read - k} more in this read).");
                }

                if (buffer[k] != expected[position])
                {
                    Assert.Fail($"Message {index:N0} differs at byte {position}: expected '{(char)expected[position]}', got '{(char)buffer[k]}' (a message lost, repeated or out of order).");
                }

                if (++position == FrameBytes)
                {
                    position = 0;
                    Format(++index, expected);
                }
            }
        }

        return index;
    }

    /// <summary>Reads to the end, checking that the bytes are a prefix of the message stream; returns how many whole messages arrived.</summary>
    private static async Task<int> ReadPrefixToEndAsync(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        var expected = new byte[FrameBytes];
        var index = 0;
        var position = 0;
        Format(index, expected);
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(), SocketFlags.None, bound.Token);
            if (read == 0)
            {
                return index;
            }

            for (var k = 0; k < read; k++)
            {
                if (buffer[k] != expected[position])
                {
                    Assert.Fail($"Message {index:N0} differs at byte {position}: the peer must get an in-order prefix of the stream.");
                }

                if (++position == FrameBytes)
                {
                    position = 0;
                    Format(++index, expected);
                }
            }
        }
    }

    private static void Format(int i, byte[] frame)
    {
        frame[0] = (byte)'m';
        for (var digit = 7; digit >= 1; digit--)
        {
            frame[digit] = (byte)('0' + (i % 10));
            i /= 10;
        }

        frame[8] = (byte)'\n';
    }

    private static async Task<string> ReadToEndThenCloseAsync(RawConnection connection)
    {
        var rest = await connection.ReadToEndAsync();
        connection.Socket.Close();
        return rest;
    }
}
