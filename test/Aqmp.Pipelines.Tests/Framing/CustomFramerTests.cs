using System.Net.Sockets;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Framing;

/// <summary>A user-written framer (the README's length-prefixed one) plugs into a session unchanged.</summary>
public class CustomFramerTests
{
    [Test]
    public async Task Length_prefixed_messages_of_every_size_cross_a_session_intact_and_in_order()
    {
        var (left, right) = DuplexPipePair.Create();
        await using var sender = new BlobProtocol(new LengthPrefixedFramer());
        await using var receiver = new BlobProtocol(new LengthPrefixedFramer());
        await sender.OpenAsync(left).Bounded();
        await receiver.OpenAsync(right).Bounded();

        var random = new Random(1234);
        var payloads = Enumerable.Range(0, 300).Select(i => RandomBytes(random, i switch { 0 => 0, < 10 => i, _ => random.Next(0, 70_000) })).ToList();
        foreach (var payload in payloads)
        {
            await sender.SendBlobAsync(payload).Bounded();
        }

        foreach (var expected in payloads)
        {
            var actual = await receiver.Received.ReadAsync().Bounded();
            Assert.That(actual, Is.EqualTo(expected));
        }

        await sender.DisconnectAsync().Bounded();

        // The receiver learns of the end on its own read loop: only then is there an error to raise.
        await receiver.UntilRunstateAsync(Runstate.Disconnecting);
        await Assert.ThrowsAsync<EndOfStreamException>(() => receiver.DisconnectAsync().Bounded());
    }

    [Test]
    public async Task A_frame_many_reads_long_is_buffered_whole_across_reads_instead_of_deadlocking()
    {
        // Reads take 64 KiB; the framer allows 3 MiB and examines each partial frame, so the read
        // loop keeps reading until the frame is whole.
        var framer = new LengthPrefixedFramer(maximumPayload: 3 << 20);
        await using var server = new BlobProtocol(framer);
        await using var client = new BlobProtocol(framer);
        await SessionConnector.ListenAndConnectAsync(server, client, new UnixDomainSocketEndPoint(TempPaths.NewSocketPath()));

        var big = RandomBytes(new Random(7), (3 << 20) - 16);
        await client.SendBlobAsync(big).Bounded();
        Assert.That(await server.Received.ReadAsync().Bounded(), Is.EqualTo(big));
        await client.DisconnectAsync().Bounded();
    }

    [Test]
    public async Task A_framer_that_raises_FrameTooLargeException_ends_the_session_with_that_error()
    {
        var (left, right) = DuplexPipePair.Create();
        await using var sender = new BlobProtocol(new LengthPrefixedFramer(maximumPayload: 1 << 20));
        await using var receiver = new BlobProtocol(new LengthPrefixedFramer(maximumPayload: 100));
        await sender.OpenAsync(left).Bounded();
        await receiver.OpenAsync(right).Bounded();

        await sender.SendBlobAsync(new byte[101]).Bounded();
        await receiver.UntilRunstateAsync(Runstate.Disconnecting);
        var error = await Assert.ThrowsAsync<FrameTooLargeException>(() => receiver.DisconnectAsync().Bounded());
        Assert.That(error!.MaximumLength, Is.EqualTo(100));
        Assert.That(receiver.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task Malformed_bytes_end_the_session_with_the_framers_ProtocolException()
    {
        var (left, right) = DuplexPipePair.Create();
        await using var receiver = new BlobProtocol(new LengthPrefixedFramer());
        await receiver.OpenAsync(right).Bounded();

        await left.Output.WriteAsync(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }).Bounded();
        var error = await Assert.ThrowsAsync<ProtocolException>(() => WaitThenDisconnectAsync(receiver));
        Assert.That(error!.Message, Does.Contain("Negative frame length"));
    }

    [Test]
    public async Task The_end_of_stream_inside_a_frame_raises_IncompleteFrameException_by_default()
    {
        var (left, right) = DuplexPipePair.Create();
        await using var receiver = new BlobProtocol(new LengthPrefixedFramer());
        await receiver.OpenAsync(right).Bounded();

        await left.Output.WriteAsync(new byte[] { 0, 0, 0, 10, 1, 2, 3 }).Bounded();
        await left.Output.CompleteAsync();
        var error = await Assert.ThrowsAsync<IncompleteFrameException>(() => WaitThenDisconnectAsync(receiver));
        Assert.That(error!.BytesReceived, Is.EqualTo(7));
        Assert.That(error.InnerException, Is.TypeOf<EndOfStreamException>());
    }

    [Test]
    public async Task A_framer_with_per_stream_state_is_reset_before_the_first_byte_of_each_connection()
    {
        var framer = new FrameNumberingFramer();
        await using var receiver = new BlobProtocol(framer);
        for (var connection = 0; connection < 2; connection++)
        {
            var (left, right) = DuplexPipePair.Create();
            await receiver.OpenAsync(right).Bounded();
            await left.Output.WriteAsync(new byte[] { 0, 0, 0, 1, 7, 0, 0, 0, 1, 8 }).Bounded();
            Assert.That(await receiver.Received.ReadAsync().Bounded(), Is.EqualTo(new byte[] { 7 }));
            Assert.That(await receiver.Received.ReadAsync().Bounded(), Is.EqualTo(new byte[] { 8 }));
            await receiver.DisconnectAsync().Bounded();
        }

        Assert.That(framer.Log, Is.EqualTo(new[] { "reset", "frame 0", "frame 1", "reset", "frame 0", "frame 1" }), "each connection's frames are numbered from 0, the reset coming before its first read");
    }

    private static async Task WaitThenDisconnectAsync(BlobProtocol protocol)
    {
        await protocol.UntilRunstateAsync(Runstate.Disconnecting);
        await protocol.DisconnectAsync().Bounded();
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A length-prefixed framer that numbers the frames of a stream: state that a new connection must not inherit.</summary>
    private sealed class FrameNumberingFramer : IMessageFramer<System.Buffers.ReadOnlySequence<byte>>
    {
        private readonly LengthPrefixedFramer _inner = new();
        private int _frames;

        public List<string> Log { get; } = [];

        public void Reset()
        {
            _frames = 0;
            Log.Add("reset");
        }

        public bool TryReadMessage(in System.Buffers.ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out System.Buffers.ReadOnlySequence<byte> message)
        {
            if (!_inner.TryReadMessage(input, ref consumed, ref examined, out message))
            {
                return false;
            }

            Log.Add($"frame {_frames++}");
            return true;
        }

        public void WriteMessage(System.Buffers.ReadOnlySequence<byte> message, System.Buffers.IBufferWriter<byte> output) => _inner.WriteMessage(message, output);
    }
}
