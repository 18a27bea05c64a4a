using System.Buffers;
using System.Diagnostics;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Reliability.Tests.Chunking.ChunkingRun;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>
/// Random chunking of line frames over a real Unix-domain socket, in both directions: a seeded
/// generator's lines (0 to 16 KiB, LF and CRLF, lone CRs, any byte but LF) cut into random writes
/// or reads of 1 byte to 64 KiB with random pauses arrive complete, in order and byte-identical,
/// and the session ends cleanly. A failure names its seed; <c>AQMP_FUZZ_SEED</c> replays it.
/// </summary>
public class RandomLineChunkingTests
{
    private const int InboundLines = 200_000;
    private const int OutboundLines = 100_000;

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [Test]
    public async Task Two_hundred_thousand_random_lines_written_in_random_chunks_arrive_whole_in_order_and_byte_identical()
    {
        var random = FuzzSeed.Next(out var seed);
        var replay = FuzzSeed.Replay(seed);
        var linesSeed = random.Next();
        var options = RandomOptions(random);
        var writer = new ChunkedSocketWriter(new ChunkSchedule(new Random(random.Next())), LineFrameStream.MaximumLineLength);
        var endPoint = _socketFiles.NewEndPoint();
        using var listener = ListenUnix(endPoint);
        await using var receiver = new CheckedLineProtocol(
            new LineFramer(LineFrameStream.MaximumLineLength), options, new LineFrameStream(linesSeed, InboundLines, LineTerminators.Mixed));

        var accepting = listener.AcceptAsync();
        await receiver.ConnectAsync(endPoint).Bounded();
        using var peer = await accepting.Bounded();
        using var timeout = new CancellationTokenSource(TransferTimeout);
        var elapsed = Stopwatch.StartNew();
        var sendError = await CaptureAsync(
            () => writer.SendAllAsync(peer, new LineFrameStream(linesSeed, InboundLines, LineTerminators.Mixed), timeout.Token).WaitAsync(TransferTimeout));
        var endError = await CaptureAsync(() => receiver.UntilRunstateAsync(Runstate.Disconnecting));
        var rootCause = await CaptureAsync(() => receiver.DisconnectAsync().Bounded());
        elapsed.Stop();

        TestContext.Progress.WriteLine(
            $"  inbound: {receiver.Received:N0} lines, {writer.Bytes:N0} bytes in {writer.Writes:N0} writes "
            + $"({writer.DelimiterCuts:N0} cut at a line feed, {writer.CutsInLimitCrLf:N0} between the CR and LF of a 16 KiB line), {receiver.MultiSegmentLines:N0} lines over 2+ segments, "
            + $"{Describe(options)}, {elapsed.ElapsedMilliseconds} ms, seed {seed}");
        Assert.That(rootCause, Is.TypeOf<EndOfStreamException>(), $"{replay}: the peer's FIN at a line boundary ends the session with EndOfStreamException; it ended with {rootCause}");
        Assert.That(sendError, Is.Null, $"{replay}: the sender failed");
        Assert.That(endError, Is.Null, $"{replay}: the session did not end by itself after the sender's FIN");
        Assert.That(receiver.Received, Is.EqualTo(InboundLines), $"{replay}: lines delivered");
        Assert.That(receiver.Runstate, Is.EqualTo(Runstate.Idle), replay);
    }

    [TestCase(LineTerminators.Lf)]
    [TestCase(LineTerminators.CrLf)]
    public async Task A_hundred_thousand_random_lines_sent_by_a_session_read_in_random_chunks_arrive_as_the_exact_byte_stream(LineTerminators terminators)
    {
        var random = FuzzSeed.Next(out var seed);
        var replay = FuzzSeed.Replay(seed);
        var linesSeed = random.Next();
        var options = RandomOptions(random);
        var senderPauses = new ChunkSchedule(new Random(random.Next()));
        var reader = new ChunkedSocketReader(new ChunkSchedule(new Random(random.Next())), new LineFrameStream(linesSeed, OutboundLines, terminators));
        var endPoint = _socketFiles.NewEndPoint();
        var framer = new LineFramer(LineFrameStream.MaximumLineLength, writeCrLf: terminators == LineTerminators.CrLf);
        await using var sender = new CheckedLineProtocol(framer, options);
        await sender.StartServerAsync(endPoint).Bounded();
        var accepting = sender.AcceptAsync();
        using var peer = NewUnixSocket();
        await peer.ConnectAsync(endPoint).Bounded();
        await accepting.Bounded();

        using var timeout = new CancellationTokenSource(TransferTimeout);
        var elapsed = Stopwatch.StartNew();
        var reading = Task.Run(async () =>
        {
            try
            {
                return await reader.ReadToEndAsync(peer, timeout.Token);
            }
            finally
            {
                // Close at once after the session's FIN, so its graceful disconnect does not linger.
                peer.Close();
            }
        });
        var lines = new LineFrameStream(linesSeed, OutboundLines, terminators);
        var sendError = await CaptureAsync(async () =>
        {
            while (lines.Produced < lines.Count)
            {
                await sender.SendLineAsync(new ReadOnlySequence<byte>(lines.Next().Line.ToArray()), timeout.Token);
                await senderPauses.PauseAsync();
            }

            await sender.DisconnectAsync(timeout.Token);
        });
        string? mismatch = null;
        var readError = await CaptureAsync(async () => mismatch = await reading.WaitAsync(TransferTimeout));
        elapsed.Stop();

        TestContext.Progress.WriteLine(
            $"  outbound ({terminators}): {reader.Lines:N0} lines, {reader.Bytes:N0} bytes in {reader.Reads:N0} reads "
            + $"({senderPauses.Yields + senderPauses.Sleeps} sender pauses), {Describe(options)}, {elapsed.ElapsedMilliseconds} ms, seed {seed}");
        Assert.That(mismatch, Is.Null, $"{replay}: the byte stream differs: {mismatch}");
        Assert.That(readError, Is.Null, $"{replay}: the reader failed");
        Assert.That(sendError, Is.Null, $"{replay}: sending every line, then DisconnectAsync, raises nothing");
        Assert.That(reader.Lines, Is.EqualTo(OutboundLines), $"{replay}: lines read");
        Assert.That(sender.Runstate, Is.EqualTo(Runstate.Idle), replay);
    }
}
