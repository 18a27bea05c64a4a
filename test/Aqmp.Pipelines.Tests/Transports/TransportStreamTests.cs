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

    [TestCase(true, TestName = "A_zero_byte_read_that_completes_at_once_while_a_write_is_blocked_returns_0_at_once_a_wait_for_data_not_the_end_of_the_stream")]
    [TestCase(false, TestName = "A_zero_byte_read_that_completes_later_while_a_write_is_blocked_returns_0_as_soon_as_it_completes")]
    public async Task A_zero_byte_read_while_a_write_is_blocked_is_not_taken_for_the_end_of_the_stream(bool completesAtOnce)
    {
        var inner = new BlockedWriterStream(completesAtOnce);
        var stream = new TransportStream(inner);
        stream.WriteStarted();

        var read = stream.ReadAsync(Memory<byte>.Empty);
        inner.CompleteRead(0);

        Assert.That(read.IsCompleted, Is.True, "no settling delay: a zero-byte read is how a reader waits for data without a buffer");
        Assert.That(await read, Is.Zero);
        Assert.That(stream.ConnectionError, Is.Null);
    }

    [Test]
    public async Task A_real_read_that_returns_0_while_a_write_is_blocked_waits_briefly_for_the_write_to_settle_before_reporting_the_end()
    {
        var inner = new BlockedWriterStream(completesAtOnce: true);
        var stream = new TransportStream(inner);
        stream.WriteStarted();

        var read = stream.ReadAsync(new byte[16]);
        inner.CompleteRead(0);

        Assert.That(read.IsCompleted, Is.False, "a send may have taken the reset this end of stream stands for: it gets to be recorded first");
        Assert.That(await read, Is.Zero);
    }

    [Test]
    public async Task A_real_read_that_returns_0_while_a_write_is_blocked_reports_the_end_once_that_write_fails_with_the_writes_error_recorded()
    {
        var inner = new BlockedWriterStream(completesAtOnce: true);
        var stream = new TransportStream(inner);
        stream.WriteStarted();

        var read = stream.ReadAsync(new byte[16]);
        inner.CompleteRead(0);
        Assert.That(read.IsCompleted, Is.False, "the end waits for the write in flight");
        var reset = new IOException("Connection reset by peer");
        stream.WriteEnded(reset);

        Assert.That(await read.AsTask().Bounded(), Is.Zero);
        Assert.That(stream.ConnectionError, Is.SameAs(reset), "the send's error is what ended the connection");
    }

    [Test]
    public async Task A_read_takes_at_most_the_maximum_read_size_whatever_the_buffer_it_is_given()
    {
        var inner = new MemoryStream(new byte[1000]);
        var stream = new TransportStream(inner, maximumReadSize: 300);

        var first = await stream.ReadAsync(new byte[1024]);
        var second = stream.Read(new byte[1024]);

        Assert.That(first, Is.EqualTo(300), "a pooled block larger than a read must not make the read larger");
        Assert.That(second, Is.EqualTo(300));
    }

    [Test]
    public void A_receive_buffer_size_below_1_is_refused_where_it_is_set()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new TransportOptions { ReceiveBufferSize = 0 });
    }

    /// <summary>A stream whose writes never complete and whose reads complete when the test says.</summary>
    private sealed class BlockedWriterStream(bool completesAtOnce) : StreamStub
    {
        private readonly TaskCompletionSource<int> _read = new();
        private readonly TaskCompletionSource _write = new();

        public override bool CanRead => true;

        public override bool CanWrite => true;

        /// <summary>Completes the read; its continuations run inline (outside the test's synchronization context, which would defer them).</summary>
        public void CompleteRead(int count)
        {
            var context = SynchronizationContext.Current;
            SynchronizationContext.SetSynchronizationContext(null);
            try
            {
                _read.TrySetResult(count);
            }
            finally
            {
                SynchronizationContext.SetSynchronizationContext(context);
            }
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (completesAtOnce)
            {
                _read.TrySetResult(0);
            }

            return new(_read.Task);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            => new(_write.Task);
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
