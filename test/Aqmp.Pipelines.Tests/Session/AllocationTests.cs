using System.Buffers;
using System.Net.Sockets;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// The line path allocates nothing per message on its own account: what a session allocates in
/// steady state is the user's message objects only (none, for the raw LineFramer).
/// This is a property of the code, not a timing: speed is measured by the benchmarks.
/// </summary>
[NonParallelizable]
public class AllocationTests
{
    [Test]
    public async Task A_steady_stream_of_raw_lines_through_a_Unix_socket_session_allocates_almost_nothing_per_message()
    {
#if DEBUG
        Assert.Ignore("Allocation figures need a Release build (Debug async state machines are heap objects); the README test command builds Release.");
#endif
        const int warmUp = 20_000;
        const int measured = 200_000;
        await using var receiver = new CountingProtocol();
        await using var sender = new CountingProtocol();
        await SessionConnector.ListenAndConnectAsync(receiver, sender, new UnixDomainSocketEndPoint(TempPaths.NewSocketPath()));

        var line = new ReadOnlySequence<byte>(new byte[63]);
        await sender.SendManyAsync(line, warmUp).Bounded();
        await receiver.UntilCountAsync(warmUp);

        // The counter is process-wide, so work left over by other tests can add to one round: a
        // per-message allocation would show in every round, so the quietest round is the figure.
        var perMessage = double.MaxValue;
        long expected = warmUp;
        for (var round = 0; round < 3; round++)
        {
            var before = GC.GetTotalAllocatedBytes(precise: true);
            await sender.SendManyAsync(line, measured).Bounded();
            expected += measured;
            await receiver.UntilCountAsync(expected);
            perMessage = Math.Min(perMessage, (double)(GC.GetTotalAllocatedBytes(precise: true) - before) / measured);
        }

        TestContext.Out.WriteLine($"{perMessage:F3} bytes allocated per message (whole process, quietest of 3 rounds)");
        // The smallest heap object is 24 bytes: under 16 bytes a message on average means no
        // message costs an allocation; what remains is amortized per batch (flushes, waits).
        Assert.That(perMessage, Is.LessThan(16), "bytes allocated per message, both loops of both sessions included");
        await sender.DisconnectAsync().Bounded();
    }

    private sealed class CountingProtocol() : PipeProtocol<ReadOnlySequence<byte>>(new LineFramer())
    {
        private long _count;

        public async Task SendManyAsync(ReadOnlySequence<byte> line, int count)
        {
            for (var i = 0; i < count; i++)
            {
                await SendAsync(line);
            }
        }

        public async Task UntilCountAsync(long target)
        {
            using var timeout = new CancellationTokenSource(TestTimeouts.Default);
            while (Interlocked.Read(ref _count) < target)
            {
                await Task.Delay(1, timeout.Token);
            }
        }

        protected override ValueTask OnMessageAsync(ReadOnlySequence<byte> message, MessageContext<ReadOnlySequence<byte>> context, CancellationToken cancellationToken)
        {
            if (message.Length != 63)
            {
                throw new InvalidDataException($"Received a line of {message.Length} bytes.");
            }

            Interlocked.Increment(ref _count);
            return ValueTask.CompletedTask;
        }
    }
}
