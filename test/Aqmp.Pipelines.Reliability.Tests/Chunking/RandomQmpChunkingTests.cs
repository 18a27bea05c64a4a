using System.Diagnostics;
using Aqmp.Pipelines.Reliability.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Reliability.Tests.Chunking.ChunkingRun;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>
/// Random chunking of QMP messages over a real Unix-domain socket: a seeded generator's valid
/// server messages (returns with random nested values, errors, events, ids of every JSON type;
/// random whitespace and escapes; multi-byte UTF-8 and surrogate pairs; LF and CRLF) cut into
/// random writes of 1 byte to 64 KiB with random pauses are decoded by <c>QmpFramer</c> to exactly
/// what was generated, in order. A failure names its seed; <c>AQMP_FUZZ_SEED</c> replays it.
/// </summary>
public class RandomQmpChunkingTests
{
    private const int Messages = 60_000;

    private readonly SocketFiles _socketFiles = new();

    [TearDown]
    public void DeleteSocketFiles() => _socketFiles.DeleteAll();

    [Test]
    public async Task Sixty_thousand_random_QMP_messages_written_in_random_chunks_decode_to_what_was_generated_in_order()
    {
        var random = FuzzSeed.Next(out var seed);
        var replay = FuzzSeed.Replay(seed);
        var messagesSeed = random.Next();
        var options = RandomOptions(random);
        var writer = new ChunkedSocketWriter(new ChunkSchedule(new Random(random.Next())));
        var endPoint = _socketFiles.NewEndPoint();
        using var listener = ListenUnix(endPoint);
        await using var receiver = new CheckedQmpProtocol(new CountingQmpFramer(), options, new QmpMessageStream(messagesSeed, Messages));

        var accepting = listener.AcceptAsync();
        await receiver.ConnectAsync(endPoint).Bounded();
        using var peer = await accepting.Bounded();
        using var timeout = new CancellationTokenSource(TransferTimeout);
        var elapsed = Stopwatch.StartNew();
        var sendError = await CaptureAsync(
            () => writer.SendAllAsync(peer, new QmpMessageStream(messagesSeed, Messages), timeout.Token).WaitAsync(TransferTimeout));
        var endError = await CaptureAsync(() => receiver.UntilRunstateAsync(Runstate.Disconnecting));
        var rootCause = await CaptureAsync(() => receiver.DisconnectAsync().Bounded());
        elapsed.Stop();

        var kinds = string.Join(", ", receiver.ReceivedByKind.OrderBy(k => k.Key).Select(k => $"{k.Value:N0} {k.Key}"));
        TestContext.Progress.WriteLine(
            $"  QMP: {receiver.Received:N0} messages ({kinds}), {writer.Bytes:N0} bytes in {writer.Writes:N0} writes "
            + $"({writer.DelimiterCuts:N0} cut at a line feed), {receiver.MultiSegmentMessages:N0} messages over 2+ segments, {Describe(options)}, {elapsed.ElapsedMilliseconds} ms, seed {seed}");
        Assert.That(rootCause, Is.TypeOf<EndOfStreamException>(), $"{replay}: the peer's FIN at a message boundary ends the session with EndOfStreamException; it ended with {rootCause}");
        Assert.That(sendError, Is.Null, $"{replay}: the sender failed");
        Assert.That(endError, Is.Null, $"{replay}: the session did not end by itself after the sender's FIN");
        Assert.That(receiver.Received, Is.EqualTo(Messages), $"{replay}: messages decoded");
        Assert.That(receiver.Runstate, Is.EqualTo(Runstate.Idle), replay);
    }
}
