using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

/// <summary>
/// <see cref="SendBuffer"/>, the outbound bytes of an owned transport connection: a flush publishes
/// what was written to the connection's one send loop (WaitForDataAsync, CollectUnsent,
/// AdvanceSent), which receives every flushed byte once and in order; finished segments go back to
/// their pool; a flush waits while the unsent bytes are at the pause threshold, until the loop
/// brings them down to the resume threshold; Complete lets the loop drain and end; Fail hands the
/// loop's error to every flush and waiter. The tests play the send loop themselves, step by step,
/// or run a small one that records what it is given.
/// </summary>
public class SendBufferSpecs
{
    private const int SegmentSize = 256;
    private const int Pause = 1000;
    private const int Resume = 400;

    // ---- Publishing: what a flush makes visible --------------------------------------------------

    [Test]
    public async Task A_flush_wakes_a_parked_send_loop_and_the_loop_collects_the_written_bytes_in_order()
    {
        var buffer = NewBuffer();
        var data = WaitForData(buffer);
        Assert.That(data.IsCompleted, Is.False, "nothing flushed: the loop parks");

        Write(buffer, Pattern(0, 10));
        Write(buffer, Pattern(10, 20));
        Assert.That(data.IsCompleted, Is.False, "written is not flushed");
        var flush = buffer.FlushAsync();

        Assert.That(flush.IsCompletedSuccessfully, Is.True, "far below the pause threshold");
        Assert.That(await data.Bounded(), Is.True);
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, 30)));
    }

    [Test]
    public void Bytes_advanced_but_not_flushed_are_counted_as_unflushed_not_as_unsent_and_are_not_collected()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 40));
        Flush(buffer);
        Write(buffer, Pattern(40, 25));

        Assert.That(buffer.CanGetUnflushedBytes, Is.True);
        Assert.That(buffer.UnflushedBytes, Is.EqualTo(25));
        Assert.That(buffer.Unsent, Is.EqualTo(40));
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, 40)), "only the flushed bytes");
        Assert.That(buffer.Unsent, Is.Zero);

        Flush(buffer);

        Assert.That(buffer.UnflushedBytes, Is.Zero);
        Assert.That(buffer.Unsent, Is.EqualTo(25));
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(40, 25)), "the rest, after what was sent before");
    }

    [Test]
    public void Unsent_counts_flushed_bytes_down_as_the_loop_advances_past_them()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 100));
        Flush(buffer);

        SendSome(buffer, 30);
        Assert.That(buffer.Unsent, Is.EqualTo(70));
        SendSome(buffer, 70);
        Assert.That(buffer.Unsent, Is.Zero);
    }

    [Test]
    public async Task A_send_loop_that_records_what_it_is_given_receives_every_flushed_byte_once_in_order_and_ends_after_Complete()
    {
        var buffer = NewBuffer();
        var loop = Task.Run(() => RecordAsync(buffer));

        var expected = new List<byte>();
        for (var i = 0; i < 50; i++)
        {
            var chunk = Pattern(expected.Count, 1 + (i * 37 % 300));
            Write(buffer, chunk);
            expected.AddRange(chunk);
            await buffer.FlushAsync();
        }

        buffer.Complete();

        Assert.That(await loop.Bounded(), Is.EqualTo(expected.ToArray()));
    }

    // ---- Segments ------------------------------------------------------------------------------

    [TestCase(1)]
    [TestCase(SegmentSize - 1)]
    [TestCase(SegmentSize)]
    [TestCase(SegmentSize + 1)]
    [TestCase(3 * SegmentSize - 7)]
    public void Writes_that_straddle_the_ends_of_small_segments_arrive_intact_and_in_order(int writeSize)
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        var total = 0;
        while (total < 10 * SegmentSize)
        {
            // Ask for the write's size when it fits a segment, so a write never spans two segments
            // only because of how much was left in the last one; and for nothing when it does not.
            Write(buffer, Pattern(total, writeSize), sizeHint: writeSize <= SegmentSize ? writeSize : 0);
            total += writeSize;
        }

        Flush(buffer);

        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, total)));
    }

    [Test]
    public void A_size_hint_larger_than_a_segment_gets_one_span_at_least_that_large_whose_bytes_arrive_intact()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        Write(buffer, Pattern(0, 100));

        var span = buffer.GetSpan(5 * SegmentSize);
        Assert.That(span.Length, Is.GreaterThanOrEqualTo(5 * SegmentSize));
        Pattern(100, 5 * SegmentSize).CopyTo(span);
        buffer.Advance(5 * SegmentSize);
        Write(buffer, Pattern(100 + (5 * SegmentSize), 10));
        Flush(buffer);

        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, 110 + (5 * SegmentSize))));
    }

    [Test]
    public void A_segment_left_empty_by_a_size_hint_that_did_not_fit_is_skipped_and_freed()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        _ = buffer.GetMemory();
        buffer.Advance(0);
        Write(buffer, Pattern(0, 2 * SegmentSize), sizeHint: 2 * SegmentSize);
        Write(buffer, Pattern(2 * SegmentSize, 10));
        Flush(buffer);

        var chunks = new List<ArraySegment<byte>>();
        var bytes = buffer.CollectUnsent(chunks);

        Assert.That(bytes, Is.EqualTo((2 * SegmentSize) + 10));
        Assert.That(chunks.Select(c => c.Count), Is.All.GreaterThan(0), "no empty chunk");
        Assert.That(Concat(chunks), Is.EqualTo(Pattern(0, (2 * SegmentSize) + 10)));
        buffer.AdvanceSent(bytes);
        Assert.That(pool.FreeBlocks, Is.EqualTo(1), "the empty segment went back to the pool");
    }

    [Test]
    public void CollectUnsent_lists_at_most_maximumChunks_chunks_and_the_next_collect_after_AdvanceSent_continues_where_it_stopped()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        var total = (5 * SegmentSize) + 50;
        Write(buffer, Pattern(0, total));
        Flush(buffer);
        var chunks = new List<ArraySegment<byte>>();
        var received = new List<byte>();

        var first = buffer.CollectUnsent(chunks, maximumChunks: 2);
        Assert.That(chunks, Has.Count.EqualTo(2));
        Assert.That(first, Is.EqualTo(2 * SegmentSize));
        Assert.That(buffer.CollectUnsent(chunks, maximumChunks: 2), Is.EqualTo(first), "collecting again without advancing lists the same bytes");
        received.AddRange(Concat(chunks));
        buffer.AdvanceSent(first);

        var second = buffer.CollectUnsent(chunks, maximumChunks: 3);
        Assert.That(chunks, Has.Count.EqualTo(3));
        received.AddRange(Concat(chunks));
        buffer.AdvanceSent(second);

        var third = buffer.CollectUnsent(chunks, maximumChunks: 3);
        Assert.That(chunks, Has.Count.EqualTo(1));
        received.AddRange(Concat(chunks));
        buffer.AdvanceSent(third);

        Assert.That(received, Is.EqualTo(Pattern(0, total)));
        Assert.That(buffer.Unsent, Is.Zero);
        Assert.That(buffer.CollectUnsent(chunks), Is.Zero);
        Assert.That(chunks, Is.Empty);
    }

    [TestCase(1)]
    [TestCase(SegmentSize - 1)]
    [TestCase(SegmentSize)]
    [TestCase(SegmentSize + 100)]
    public void A_loop_that_sends_only_part_of_what_it_collected_collects_the_rest_next_from_the_first_unsent_byte(int partial)
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        var total = 3 * SegmentSize;
        Write(buffer, Pattern(0, total));
        Flush(buffer);
        var chunks = new List<ArraySegment<byte>>();

        buffer.CollectUnsent(chunks);
        buffer.AdvanceSent(partial);
        var rest = buffer.CollectUnsent(chunks);

        Assert.That(rest, Is.EqualTo(total - partial));
        Assert.That(Concat(chunks), Is.EqualTo(Pattern(partial, total - partial)));
    }

    [Test]
    public void A_segment_written_to_its_end_but_flushed_only_partway_is_collected_only_up_to_the_flushed_point()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        Write(buffer, Pattern(0, 100));
        Flush(buffer);
        Write(buffer, Pattern(100, SegmentSize - 100));
        Write(buffer, Pattern(SegmentSize, 10));
        Assert.That(buffer.UnflushedBytes, Is.EqualTo(SegmentSize - 90), "the writer filled the first segment and moved on to a second");

        var chunks = new List<ArraySegment<byte>>();
        Assert.That(buffer.CollectUnsent(chunks), Is.EqualTo(100));
        Assert.That(Concat(chunks), Is.EqualTo(Pattern(0, 100)));
        buffer.AdvanceSent(100);

        Flush(buffer);
        var rest = buffer.CollectUnsent(chunks);

        Assert.That(rest, Is.EqualTo(SegmentSize - 90));
        Assert.That(chunks, Has.Count.EqualTo(2), "the rest of the first segment, then the second");
        Assert.That(Concat(chunks), Is.EqualTo(Pattern(100, SegmentSize - 90)));
    }

    // ---- The pool ------------------------------------------------------------------------------

    [Test]
    public void Segments_the_loop_has_finished_go_back_to_the_pool_and_the_segment_the_writer_is_in_does_not()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        Write(buffer, Pattern(0, (3 * SegmentSize) + 10));
        Flush(buffer);

        SendAll(buffer);

        Assert.That(pool.FreeBlocks, Is.EqualTo(3), "three full segments are done; the fourth is the writer's");
        Write(buffer, Pattern((3 * SegmentSize) + 10, SegmentSize - 10), sizeHint: SegmentSize - 10);
        Flush(buffer);
        SendAll(buffer);
        Assert.That(pool.FreeBlocks, Is.EqualTo(3), "the writer's segment, sent to its very end, is still the writer's");
        Write(buffer, Pattern(4 * SegmentSize, 1));
        Assert.That(pool.FreeBlocks, Is.EqualTo(2), "the writer moved on to a block from the pool");
        Flush(buffer);
        SendAll(buffer);
        Assert.That(pool.FreeBlocks, Is.EqualTo(3), "once the writer moved on, the sent segment is freed");
    }

    [Test]
    public async Task Once_writers_promise_to_write_under_the_lock_a_loop_that_parks_with_everything_sent_gives_every_block_back()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        buffer.ReleaseBlocksWhenIdle();
        Write(buffer, Pattern(0, SegmentSize + 10));
        Flush(buffer);
        SendAll(buffer);
        Assert.That(pool.FreeBlocks, Is.EqualTo(1), "the writer's block is still the writer's while the loop has not parked");

        var data = WaitForData(buffer);

        Assert.That(data.IsCompleted, Is.False, "parked");
        Assert.That(pool.FreeBlocks, Is.EqualTo(2), "parked with everything sent: the writer's block went back too");
        Write(buffer, Pattern(SegmentSize + 10, 20));
        Assert.That(pool.FreeBlocks, Is.EqualTo(1), "the next write rents a block again");
        Flush(buffer);
        Assert.That(await data.Bounded(), Is.True);
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(SegmentSize + 10, 20)), "the stream goes on where it was");
    }

    [Test]
    public void A_loop_that_parks_with_bytes_written_but_not_flushed_keeps_the_block_that_holds_them()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        buffer.ReleaseBlocksWhenIdle();
        Write(buffer, Pattern(0, 10));
        Flush(buffer);
        SendAll(buffer);
        Write(buffer, Pattern(10, 5));

        _ = WaitForData(buffer);

        Assert.That(pool.FreeBlocks, Is.Zero, "5 bytes wait for their flush in the writer's block");
        Flush(buffer);
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(10, 5)));
    }

    [Test]
    public void A_promise_made_while_the_loop_is_parked_with_everything_sent_gives_the_block_back_at_once()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        Write(buffer, Pattern(0, 10));
        Flush(buffer);
        SendAll(buffer);
        _ = WaitForData(buffer);
        Assert.That(pool.FreeBlocks, Is.Zero, "no promise: the writer keeps its block, as a pipe writer does");

        buffer.ReleaseBlocksWhenIdle();

        Assert.That(pool.FreeBlocks, Is.EqualTo(1));
    }

    [Test]
    public void A_segment_sent_only_partway_stays_out_of_the_pool()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        Write(buffer, Pattern(0, 3 * SegmentSize));
        Flush(buffer);

        SendSome(buffer, SegmentSize + 10);

        Assert.That(pool.FreeBlocks, Is.EqualTo(1));
        SendSome(buffer, SegmentSize - 10);
        Assert.That(pool.FreeBlocks, Is.EqualTo(2));
    }

    [Test]
    public void A_segment_larger_than_the_pool_blocks_is_not_put_into_the_pool()
    {
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 64);
        var buffer = NewBuffer(pool: pool);
        Write(buffer, Pattern(0, 4 * SegmentSize), sizeHint: 4 * SegmentSize);
        Write(buffer, Pattern(4 * SegmentSize, SegmentSize), sizeHint: SegmentSize);
        Flush(buffer);

        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, 5 * SegmentSize)));
        Assert.That(pool.FreeBlocks, Is.Zero, "the large segment came from the shared array pool and went back there");
    }

    [Test]
    public void A_pool_whose_memory_is_not_an_array_still_works_and_freeing_its_segments_does_not_throw()
    {
        using var pool = new NativeBlockPool(300);
        var buffer = NewBuffer(pool: pool);
        Write(buffer, Pattern(0, 700));
        Flush(buffer);

        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, 700)));
    }

    // ---- Backpressure --------------------------------------------------------------------------

    [Test]
    public void A_flush_below_the_pause_threshold_completes_at_once()
    {
        var buffer = NewBuffer(pause: Pause, resume: Resume);
        Write(buffer, Pattern(0, Pause - 1));

        var flush = buffer.FlushAsync();

        Assert.That(flush.IsCompletedSuccessfully, Is.True);
        var result = flush.Result;
        Assert.That(result.IsCanceled || result.IsCompleted, Is.False);
    }

    [TestCase(Pause)]
    [TestCase(Pause + 500)]
    public async Task A_flush_at_or_over_the_pause_threshold_waits_until_the_loop_brings_the_unsent_bytes_down_to_the_resume_threshold(int written)
    {
        var buffer = NewBuffer(pause: Pause, resume: Resume);
        Write(buffer, Pattern(0, written));

        var flush = buffer.FlushAsync();
        Assert.That(flush.IsCompleted, Is.False, "at the pause threshold");
        Assert.That(buffer.Unsent, Is.EqualTo(written), "the waiting flush published its bytes");

        SendSome(buffer, written - Resume - 1);
        Assert.That(flush.IsCompleted, Is.False, "one byte over the resume threshold");
        SendSome(buffer, 1);

        var result = await flush.Bounded();
        Assert.That(result.IsCanceled || result.IsCompleted, Is.False);
        Assert.That(buffer.Unsent, Is.EqualTo(Resume));
    }

    [Test]
    public async Task A_flush_counts_the_bytes_flushed_before_it_towards_the_pause_threshold()
    {
        var buffer = NewBuffer(pause: Pause, resume: Resume);
        Write(buffer, Pattern(0, Pause - 100));
        Flush(buffer);
        Write(buffer, Pattern(Pause - 100, 100));

        var flush = buffer.FlushAsync();

        Assert.That(flush.IsCompleted, Is.False);
        SendSome(buffer, Pause - Resume);
        await flush.Bounded();
    }

    [Test]
    public async Task A_second_flush_while_one_waits_throws_InvalidOperationException_and_the_first_still_completes()
    {
        var (buffer, first) = FlushAtThePauseThreshold();

        Assert.That(async () => await buffer.FlushAsync(), Throws.InvalidOperationException);

        SendSome(buffer, Pause - Resume);
        await first.Bounded();
    }

    [Test]
    public async Task CancelPendingFlush_completes_the_waiting_flush_as_canceled_and_its_bytes_stay_flushed()
    {
        var (buffer, flush) = FlushAtThePauseThreshold();

        buffer.CancelPendingFlush();

        var result = await flush.Bounded();
        Assert.That(result.IsCanceled, Is.True);
        Assert.That(result.IsCompleted, Is.False);
        Assert.That(buffer.Unsent, Is.EqualTo(Pause));
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, Pause)));
    }

    [Test]
    public async Task A_CancelPendingFlush_while_no_flush_waits_cancels_the_next_flush_as_a_pipe_writer_does()
    {
        var buffer = NewBuffer(pause: Pause, resume: Resume);
        Write(buffer, Pattern(0, Pause));

        buffer.CancelPendingFlush();
        var flush = buffer.FlushAsync();

        Assert.That(flush.IsCompleted, Is.True, "the flush was cancelled before it started: it must not wait");
        var result = await flush.Bounded();
        Assert.That(result.IsCanceled, Is.True);
        Assert.That(buffer.Unsent, Is.EqualTo(Pause), "its bytes are flushed all the same");
    }

    [Test]
    public async Task A_cancelled_token_ends_a_waiting_flush_with_OperationCanceledException_and_a_later_flush_can_wait_again()
    {
        using var cancel = new CancellationTokenSource();
        var (buffer, flush) = FlushAtThePauseThreshold(cancel.Token);

        await cancel.CancelAsync();

        Assert.That(async () => await flush.Bounded(), Throws.InstanceOf<OperationCanceledException>());
        var again = buffer.FlushAsync();
        Assert.That(again.IsCompleted, Is.False, "still at the pause threshold");
        SendSome(buffer, Pause - Resume);
        await again.Bounded();
    }

    [Test]
    public void A_token_cancelled_before_a_flush_that_must_wait_ends_it_with_OperationCanceledException()
    {
        var buffer = NewBuffer(pause: Pause, resume: Resume);
        Write(buffer, Pattern(0, Pause));

        Assert.That(async () => await buffer.FlushAsync(new CancellationToken(canceled: true)).Bounded(), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(buffer.Unsent, Is.EqualTo(Pause), "the bytes were published all the same");
    }

    // ---- Frames: taking back what a failed framer wrote -------------------------------------------

    [Test]
    public void A_frame_withdrawn_within_one_segment_leaves_the_bytes_before_it_and_the_next_write_continues_where_it_began()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 40));
        buffer.BeginFrame();
        Write(buffer, [9, 9, 9, 9, 9, 9, 9]);

        Assert.That(buffer.TryWithdrawFrame(), Is.True);
        buffer.EndFrame();
        Write(buffer, Pattern(40, 30));
        Flush(buffer);

        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, 70)), "nothing of the withdrawn frame");
    }

    [Test]
    public void A_frame_that_asked_for_a_new_segment_before_writing_a_byte_is_withdrawn_and_the_next_frame_goes_into_that_segment()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, SegmentSize - 10));
        buffer.BeginFrame();
        Write(buffer, new byte[100], sizeHint: 100); // does not fit the 10 bytes left: a new segment from its first byte

        Assert.That(buffer.TryWithdrawFrame(), Is.True);
        Write(buffer, Pattern(SegmentSize - 10, 50));
        Flush(buffer);

        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, SegmentSize + 40)));
    }

    [Test]
    public void A_frame_whose_bytes_reach_into_a_second_segment_cannot_be_withdrawn_and_stays_written()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, SegmentSize - 10));
        buffer.BeginFrame();
        Write(buffer, Pattern(SegmentSize - 10, 30)); // 10 bytes in the first segment, 20 in the next

        Assert.That(buffer.TryWithdrawFrame(), Is.False, "part of the frame is in a segment the writer has left");
        Flush(buffer);
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, SegmentSize + 20)), "nothing was taken back");
    }

    [Test]
    public void A_frame_that_is_ended_cannot_be_withdrawn_afterwards()
    {
        var buffer = NewBuffer();
        buffer.BeginFrame();
        Write(buffer, Pattern(0, 12));
        buffer.EndFrame();

        Assert.That(buffer.TryWithdrawFrame(), Is.False);
        Assert.That(buffer.UnflushedBytes, Is.EqualTo(12));
    }

    [Test]
    public async Task Withheld_bytes_written_but_not_flushed_are_never_sent_not_even_by_Complete_and_nothing_written_later_is()
    {
        var buffer = NewBuffer();
        var loop = Task.Run(() => RecordAsync(buffer));
        Write(buffer, Pattern(0, 300));
        Flush(buffer);
        Write(buffer, Pattern(300, 77));

        lock (buffer.SyncRoot)
        {
            buffer.WithholdHeld();
        }

        Write(buffer, Pattern(377, 5));
        Assert.That(buffer.FlushAsync().IsCompletedSuccessfully, Is.True);
        buffer.Complete();

        Assert.That(await loop.Bounded(), Is.EqualTo(Pattern(0, 300)));
    }

    // ---- Complete ------------------------------------------------------------------------------

    [Test]
    public async Task After_Complete_the_loop_sends_everything_flushed_and_then_WaitForDataAsync_returns_false()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 500));
        Flush(buffer);

        buffer.Complete();

        Assert.That(await WaitForData(buffer).Bounded(), Is.True, "the flushed bytes are still to send");
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, 500)));
        Assert.That(await WaitForData(buffer).Bounded(), Is.False, "drained: the loop ends");
    }

    [Test]
    public void A_flush_after_Complete_returns_IsCompleted()
    {
        var buffer = NewBuffer();
        buffer.Complete();

        var flush = buffer.FlushAsync();

        Assert.That(flush.IsCompletedSuccessfully, Is.True);
        Assert.That(flush.Result.IsCompleted, Is.True);
    }

    [Test]
    public async Task Complete_wakes_a_parked_loop_which_then_ends()
    {
        var buffer = NewBuffer();
        var data = WaitForData(buffer);
        Assert.That(data.IsCompleted, Is.False);

        buffer.Complete();

        Assert.That(await data.Bounded(), Is.False);
    }

    [Test]
    public async Task Complete_publishes_the_bytes_written_but_not_flushed_and_a_recording_loop_receives_them_before_it_ends()
    {
        var buffer = NewBuffer();
        var loop = Task.Run(() => RecordAsync(buffer));
        Write(buffer, Pattern(0, 300));
        Flush(buffer);
        Write(buffer, Pattern(300, 77));

        buffer.Complete();

        Assert.That(await loop.Bounded(), Is.EqualTo(Pattern(0, 377)));
        Assert.That(buffer.UnflushedBytes, Is.Zero);
    }

    [Test]
    public async Task Complete_ends_a_waiting_flush_with_IsCompleted()
    {
        var (buffer, flush) = FlushAtThePauseThreshold();

        buffer.Complete();

        var result = await flush.Bounded();
        Assert.That(result.IsCompleted, Is.True);
        Assert.That(result.IsCanceled, Is.False);
    }

    // ---- Fail ----------------------------------------------------------------------------------

    [Test]
    public void Fail_faults_a_waiting_flush_with_the_error_and_every_later_flush_too()
    {
        var (buffer, flush) = FlushAtThePauseThreshold();
        var error = new IOException("connection reset");

        buffer.Fail(error);

        Assert.That(async () => await flush.Bounded(), Throws.Exception.SameAs(error));
        Assert.That(buffer.Failure, Is.SameAs(error));
        Write(buffer, Pattern(Pause, 1));
        var later = buffer.FlushAsync();
        Assert.That(later.IsFaulted, Is.True);
        Assert.That(async () => await later, Throws.Exception.SameAs(error));
    }

    [Test]
    public void A_second_Fail_keeps_the_first_error()
    {
        var buffer = NewBuffer();
        var first = new IOException("first");

        buffer.Fail(first);
        buffer.Fail(new IOException("second"));

        Assert.That(buffer.Failure, Is.SameAs(first));
    }

    [Test]
    public async Task Fail_ends_a_waiting_WaitUntilSentAsync_with_an_IOException_that_holds_the_error_and_counts_the_unsent_bytes()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 500));
        Flush(buffer);
        SendSome(buffer, 200);
        var sent = buffer.WaitUntilSentAsync(CancellationToken.None);
        var error = new IOException("broken pipe");

        buffer.Fail(error);

        var raised = await Assert.ThrowsAsync<IOException>(() => sent.Bounded());
        Assert.That(raised!.InnerException, Is.SameAs(error));
        Assert.That(raised.Message, Does.Contain("300 of 500").And.Contain("broken pipe"));
    }

    [Test]
    public void WaitUntilSentAsync_after_Fail_raises_the_same_IOException_at_once_unless_everything_flushed_was_sent()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 500));
        Flush(buffer);
        SendSome(buffer, 500);
        var error = new IOException("broken pipe");
        buffer.Fail(error);

        Assert.That(buffer.WaitUntilSentAsync(CancellationToken.None).IsCompletedSuccessfully, Is.True, "everything flushed was sent before the failure");

        Write(buffer, Pattern(500, 20));
        Assert.That(async () => await buffer.FlushAsync(), Throws.Exception.SameAs(error), "a flush after the failure raises it, and publishes nothing");
        Assert.That(buffer.WaitUntilSentAsync(CancellationToken.None).IsCompletedSuccessfully, Is.True, "nothing more was flushed");
    }

    [Test]
    public async Task A_loop_whose_send_throws_fails_the_buffer_so_the_waiting_flush_and_sent_waiter_get_its_error()
    {
        var buffer = NewBuffer(pause: Pause, resume: Resume);
        var error = new IOException("send failed");
        var loop = Task.Run(() => RecordAsync(buffer, beforeSend: () => throw error));
        Write(buffer, Pattern(0, Pause));
        var flush = buffer.FlushAsync();
        var sent = buffer.WaitUntilSentAsync(CancellationToken.None);

        await loop.Bounded();

        Assert.That(async () => await flush.Bounded(), Throws.Exception.SameAs(error));
        var raised = await Assert.ThrowsAsync<IOException>(() => sent.Bounded());
        Assert.That(raised!.InnerException, Is.SameAs(error));
        Assert.That(raised.Message, Does.Contain($"{Pause} of {Pause}"));
    }

    // ---- WaitUntilSentAsync --------------------------------------------------------------------

    [Test]
    public void WaitUntilSentAsync_completes_at_once_when_everything_flushed_was_sent()
    {
        var buffer = NewBuffer();
        Assert.That(buffer.WaitUntilSentAsync(CancellationToken.None).IsCompletedSuccessfully, Is.True, "nothing flushed");

        Write(buffer, Pattern(0, 100));
        Flush(buffer);
        SendAll(buffer);
        Write(buffer, Pattern(100, 5));

        Assert.That(buffer.WaitUntilSentAsync(CancellationToken.None).IsCompletedSuccessfully, Is.True, "what is not flushed does not count");
    }

    [Test]
    public async Task WaitUntilSentAsync_completes_when_the_loop_advances_past_what_was_flushed_at_the_call_not_what_was_flushed_after()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 100));
        Flush(buffer);

        var sent = buffer.WaitUntilSentAsync(CancellationToken.None);
        Write(buffer, Pattern(100, 100));
        Flush(buffer);

        SendSome(buffer, 99);
        Assert.That(sent.IsCompleted, Is.False, "one byte short");
        SendSome(buffer, 1);
        await sent.Bounded();
        Assert.That(buffer.Unsent, Is.EqualTo(100), "the later flush is still unsent");
    }

    [Test]
    public async Task WaitUntilSentAsync_waiters_with_different_targets_complete_each_at_its_own_target()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 100));
        Flush(buffer);
        var first = buffer.WaitUntilSentAsync(CancellationToken.None).AsTask();
        Write(buffer, Pattern(100, 100));
        Flush(buffer);
        var second = buffer.WaitUntilSentAsync(CancellationToken.None).AsTask();

        SendSome(buffer, 150);
        await first.Bounded();
        Assert.That(second.IsCompleted, Is.False);
        SendSome(buffer, 50);
        await second.Bounded();
    }

    [Test]
    public async Task WaitUntilSentAsync_stops_waiting_when_its_token_is_cancelled_and_nothing_is_discarded()
    {
        var buffer = NewBuffer();
        Write(buffer, Pattern(0, 100));
        Flush(buffer);
        using var cancel = new CancellationTokenSource();
        var sent = buffer.WaitUntilSentAsync(cancel.Token);

        await cancel.CancelAsync();

        Assert.That(async () => await sent.Bounded(), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(buffer.Unsent, Is.EqualTo(100));
        Assert.That(SendAll(buffer), Is.EqualTo(Pattern(0, 100)));
    }

    [Test]
    public void A_cancelled_WaitUntilSentAsync_leaves_no_unobserved_exception_behind_when_the_loop_later_fails()
    {
        var unobserved = new List<Exception>();
        var error = new IOException("failed after the wait was cancelled");
        EventHandler<UnobservedTaskExceptionEventArgs> record = (_, e) =>
        {
            if (e.Exception.Flatten().InnerExceptions.Any(x => x.InnerException == error))
            {
                lock (unobserved)
                {
                    unobserved.Add(e.Exception);
                }

                e.SetObserved();
            }
        };
        TaskScheduler.UnobservedTaskException += record;
        try
        {
            CancelAWaitThenFail(error);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= record;
        }

        Assert.That(unobserved, Is.Empty);

        [MethodImpl(MethodImplOptions.NoInlining)]
        static void CancelAWaitThenFail(Exception error)
        {
            var buffer = NewBuffer();
            Write(buffer, Pattern(0, 100));
            Flush(buffer);
            using var cancel = new CancellationTokenSource();
            var sent = buffer.WaitUntilSentAsync(cancel.Token).AsTask();
            cancel.Cancel();
            Assert.That(sent.IsCanceled, Is.True);
            buffer.Fail(error);
        }
    }

    // ---- Stress --------------------------------------------------------------------------------

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public async Task A_writer_thread_and_a_send_loop_racing_with_random_sizes_flushes_pauses_and_waits_until_sent_deliver_every_byte_once_in_order(int fixedSeed)
    {
        const int Total = 256 * 1024;
        var seed = int.TryParse(Environment.GetEnvironmentVariable(FuzzSeedVariable), out var replayed) ? replayed : fixedSeed;
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.FullName}: seed {seed} (replay with {FuzzSeedVariable}={seed})");
        var replay = $"seed {seed}: replay with {FuzzSeedVariable}={seed}";
        var random = new Random(seed);
        var writerRandom = new Random(random.Next());
        var loopRandom = new Random(random.Next());
        using var pool = new SegmentPool(SegmentSize, maximumRetained: 16);
        var buffer = NewBuffer(pool: pool, pause: 4 * SegmentSize, resume: SegmentSize);

        var received = 0L;
        var mismatchAt = -1L;
        var sentTooEarlyAt = -1L;
        var loop = Task.Run(async () =>
        {
            var chunks = new List<ArraySegment<byte>>();
            while (await buffer.WaitForDataAsync().ConfigureAwait(false))
            {
                var bytes = buffer.CollectUnsent(chunks, maximumChunks: 1 + loopRandom.Next(8));
                var take = loopRandom.Next(4) == 0 ? 1 + loopRandom.NextInt64(bytes) : bytes;
                var left = take;
                foreach (var chunk in chunks)
                {
                    var count = (int)Math.Min(left, chunk.Count);
                    for (var i = 0; i < count; i++)
                    {
                        if (mismatchAt < 0 && chunk[i] != PatternByte(received + i))
                        {
                            mismatchAt = received + i;
                        }
                    }

                    received += count;
                    left -= count;
                    if (left == 0)
                    {
                        break;
                    }
                }

                switch (loopRandom.Next(20))
                {
                    case 0:
                        Thread.Sleep(1);
                        break;
                    case < 4:
                        Thread.Yield();
                        break;
                    case < 8:
                        await Task.Yield();
                        break;
                }

                buffer.AdvanceSent(take);
            }
        });

        var writer = Task.Factory.StartNew(
            async () =>
            {
                var written = 0L;
                var flushes = 0;
                var waits = 0;
                var sentWaits = 0;
                while (written < Total)
                {
                    var size = (int)Math.Min(Total - written, 1 + writerRandom.Next(3 * SegmentSize));
                    var memory = buffer.GetMemory(writerRandom.Next(2) == 0 ? 0 : Math.Min(size, writerRandom.Next(2 * SegmentSize)));
                    var count = Math.Min(size, memory.Length);
                    FillPattern(memory.Span[..count], written);

                    buffer.Advance(count);
                    written += count;
                    if (writerRandom.Next(3) == 0)
                    {
                        var flush = buffer.FlushAsync();
                        flushes++;
                        if (!flush.IsCompleted)
                        {
                            waits++;
                        }

                        await flush.ConfigureAwait(false);
                        if (writerRandom.Next(20) == 0)
                        {
                            await buffer.WaitUntilSentAsync(CancellationToken.None).ConfigureAwait(false);
                            sentWaits++;
                            if (Volatile.Read(ref received) < written)
                            {
                                sentTooEarlyAt = written;
                            }
                        }
                    }

                    if (writerRandom.Next(50) == 0)
                    {
                        Thread.Yield();
                    }
                }

                buffer.Complete();
                return (flushes, waits, sentWaits);
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default).Unwrap();

        var (flushes, waits, sentWaits) = await writer.Bounded();
        await loop.Bounded();

        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.Name}: {flushes} flushes, {waits} waited for room, {sentWaits} waits until sent");
        Assert.That(sentTooEarlyAt, Is.EqualTo(-1), $"a wait until sent completed before the loop had advanced past its target; {replay}");
        Assert.That(mismatchAt, Is.EqualTo(-1), $"the first wrong byte; {replay}");
        Assert.That(received, Is.EqualTo(Total), replay);
        Assert.That(buffer.Unsent, Is.Zero, replay);
        Assert.That(buffer.WaitUntilSentAsync(CancellationToken.None).IsCompletedSuccessfully, Is.True, replay);
    }

    // ---- Helpers -------------------------------------------------------------------------------

    private const string FuzzSeedVariable = "AQMP_FUZZ_SEED";

    private static SendBuffer NewBuffer(MemoryPool<byte>? pool = null, long pause = 0, long resume = 0)
        => new(new PipeOptions(pool: pool, pauseWriterThreshold: pause, resumeWriterThreshold: resume, minimumSegmentSize: SegmentSize, useSynchronizationContext: false));

    /// <summary>A byte that depends on its position and is not periodic at segment sizes.</summary>
    private static byte PatternByte(long position) => (byte)(position ^ (position >> 8) ^ (position >> 16) ^ 0x5A);

    private static byte[] Pattern(long start, int count)
    {
        var bytes = new byte[count];
        FillPattern(bytes, start);
        return bytes;
    }

    private static void FillPattern(Span<byte> span, long start)
    {
        for (var i = 0; i < span.Length; i++)
        {
            span[i] = PatternByte(start + i);
        }
    }

    /// <summary>Writes <paramref name="bytes"/>, asking each time for <paramref name="sizeHint"/> and taking what is given.</summary>
    private static void Write(SendBuffer buffer, ReadOnlySpan<byte> bytes, int sizeHint = 0)
    {
        while (!bytes.IsEmpty)
        {
            var span = buffer.GetSpan(Math.Min(sizeHint, bytes.Length));
            var count = Math.Min(span.Length, bytes.Length);
            bytes[..count].CopyTo(span);
            buffer.Advance(count);
            bytes = bytes[count..];
        }
    }

    /// <summary>A buffer with the pause and resume thresholds, and a flush of exactly the pause threshold, which waits.</summary>
    private static (SendBuffer Buffer, ValueTask<FlushResult> Flush) FlushAtThePauseThreshold(CancellationToken cancellationToken = default)
    {
        var buffer = NewBuffer(pause: Pause, resume: Resume);
        Write(buffer, Pattern(0, Pause));
        var flush = buffer.FlushAsync(cancellationToken);
        Assert.That(flush.IsCompleted, Is.False, "at the pause threshold, the flush waits");
        return (buffer, flush);
    }

    private static void Flush(SendBuffer buffer)
        => Assert.That(buffer.FlushAsync().IsCompletedSuccessfully, Is.True, "a flush below the pause threshold completes at once");

    private static ValueTask<bool> WaitForData(SendBuffer buffer) => buffer.WaitForDataAsync();

    private static byte[] Concat(List<ArraySegment<byte>> chunks) => [.. chunks.SelectMany(c => c)];

    /// <summary>Plays the send loop: collects what is unsent and advances past <paramref name="bytes"/> of it.</summary>
    private static byte[] SendSome(SendBuffer buffer, long bytes)
    {
        var chunks = new List<ArraySegment<byte>>();
        var available = buffer.CollectUnsent(chunks, int.MaxValue);
        Assert.That(available, Is.GreaterThanOrEqualTo(bytes), "the test sends only what is flushed");
        var sent = Concat(chunks)[..(int)bytes];
        buffer.AdvanceSent(bytes);
        return sent;
    }

    /// <summary>Plays the send loop until nothing flushed is unsent, a few chunks at a time; returns what it sent.</summary>
    private static byte[] SendAll(SendBuffer buffer)
    {
        var received = new List<byte>();
        var chunks = new List<ArraySegment<byte>>();
        while (buffer.CollectUnsent(chunks, maximumChunks: 3) is var bytes and > 0)
        {
            received.AddRange(Concat(chunks));
            buffer.AdvanceSent(bytes);
        }

        return [.. received];
    }

    /// <summary>
    /// A send loop as a connection runs it: parks until there is data, collects it, "sends" it by
    /// recording it (after <paramref name="beforeSend"/>), advances; fails the buffer if sending throws.
    /// </summary>
    private static async Task<byte[]> RecordAsync(SendBuffer buffer, Action? beforeSend = null)
    {
        var received = new List<byte>();
        var chunks = new List<ArraySegment<byte>>();
        try
        {
            while (await buffer.WaitForDataAsync().ConfigureAwait(false))
            {
                var bytes = buffer.CollectUnsent(chunks);
                beforeSend?.Invoke();
                received.AddRange(Concat(chunks));
                buffer.AdvanceSent(bytes);
            }
        }
        catch (Exception ex)
        {
            buffer.Fail(ex);
        }

        return [.. received];
    }

    /// <summary>A pool whose blocks are memory that no array is exposed for, as native memory would be.</summary>
    private sealed class NativeBlockPool(int size) : MemoryPool<byte>
    {
        public override int MaxBufferSize => size;

        public override IMemoryOwner<byte> Rent(int minBufferSize = -1) => new Block(new byte[size]);

        protected override void Dispose(bool disposing)
        {
        }

        /// <summary>MemoryManager.TryGetArray says no, so MemoryMarshal.TryGetArray finds no array.</summary>
        private sealed class Block(byte[] bytes) : MemoryManager<byte>
        {
            public override Span<byte> GetSpan() => bytes;

            public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();

            public override void Unpin()
            {
            }

            protected override void Dispose(bool disposing)
            {
            }
        }
    }
}
