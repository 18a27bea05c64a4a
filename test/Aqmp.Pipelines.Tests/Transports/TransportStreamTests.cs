using System.Threading.Tasks.Sources;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

/// <summary>
/// <see cref="TransportStream"/> consumes every value task of the stream under it exactly once. A
/// socket backs its value tasks with one reusable source: consuming one twice reads the source
/// after it was recycled for the next operation, which fails with InvalidOperationException
/// ("Operation is not valid due to the current state of the object") and used to end a session
/// under load, when a receive completed between the call and the check of its result.
/// </summary>
public class TransportStreamTests
{
    [Test]
    public async Task A_read_that_completed_before_it_was_checked_is_consumed_once_and_returns_its_count()
    {
        var inner = new ReusableSourceStream(readResult: 5);
        var stream = new TransportStream(inner);

        var count = await stream.ReadAsync(new byte[16]);

        Assert.That(count, Is.EqualTo(5));
        Assert.That(inner.Source.Consumptions, Is.EqualTo(1), "the inner read's result is taken exactly once");
    }

    [Test]
    public async Task A_write_that_completed_before_it_was_checked_is_consumed_once_and_counted()
    {
        var inner = new ReusableSourceStream(readResult: 0);
        var stream = new TransportStream(inner);

        await stream.WriteAsync(new byte[7]);

        Assert.That(inner.Source.Consumptions, Is.EqualTo(1), "the inner write's result is taken exactly once, so its source is released");
        Assert.That(stream.BytesWritten, Is.EqualTo(7));
    }

    /// <summary>
    /// A value task source that is already complete and, like a socket's, may be consumed once:
    /// afterwards it belongs to the next operation and every use of the old token throws.
    /// </summary>
    private sealed class ReusableSource(int result) : IValueTaskSource<int>, IValueTaskSource
    {
        public const short Token = 1;

        public int Consumptions { get; private set; }

        public ValueTaskSourceStatus GetStatus(short token)
        {
            ThrowIfRecycled(token);
            return ValueTaskSourceStatus.Succeeded;
        }

        public int GetResult(short token)
        {
            ThrowIfRecycled(token);
            Consumptions++;
            return result;
        }

        void IValueTaskSource.GetResult(short token) => GetResult(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        {
            ThrowIfRecycled(token);
            continuation(state);
        }

        private void ThrowIfRecycled(short token)
        {
            if (token != Token || Consumptions > 0)
            {
                throw new InvalidOperationException("Operation is not valid due to the current state of the object.");
            }
        }
    }

    /// <summary>A stream whose reads and writes complete at once through a <see cref="ReusableSource"/>.</summary>
    private sealed class ReusableSourceStream(int readResult) : StreamStub
    {
        public ReusableSource Source { get; } = new(readResult);

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => new(Source, ReusableSource.Token);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            => new(Source, ReusableSource.Token);
    }
}
