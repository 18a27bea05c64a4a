using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

/// <summary>
/// <see cref="SegmentPool"/>, the memory pool of a connection's pipes: fixed-size blocks, each
/// returned block (and its owner object) reused, at most a bounded number kept, safe to share
/// between the threads of a pipe's reader and writer.
/// </summary>
public class SegmentPoolTests
{
    private const int BlockSize = 4096;

    [TestCase(-1)]
    [TestCase(0)]
    [TestCase(1)]
    [TestCase(BlockSize)]
    public void Rent_gives_a_block_of_exactly_MaxBufferSize_bytes_whatever_size_up_to_it_is_asked(int minBufferSize)
    {
        using var pool = new SegmentPool(BlockSize, maximumRetained: 4);

        using var owner = pool.Rent(minBufferSize);

        Assert.That(pool.MaxBufferSize, Is.EqualTo(BlockSize));
        Assert.That(owner.Memory.Length, Is.EqualTo(BlockSize));
    }

    [Test]
    public void A_returned_block_is_rented_again_with_the_same_memory_and_the_same_owner_object()
    {
        using var pool = new SegmentPool(BlockSize, maximumRetained: 4);
        var first = pool.Rent();
        var firstArray = ArrayOf(first.Memory);
        first.Dispose();
        Assert.That(pool.FreeBlocks, Is.EqualTo(1));

        var second = pool.Rent();

        Assert.That(ArrayOf(second.Memory), Is.SameAs(firstArray), "the block is reused");
        Assert.That(second, Is.SameAs(first), "the owner object is reused with it");
        Assert.That(pool.FreeBlocks, Is.Zero);
        second.Dispose();
    }

    [Test]
    public void Disposing_an_owner_twice_returns_its_block_once_so_two_later_rents_get_two_different_blocks()
    {
        using var pool = new SegmentPool(BlockSize, maximumRetained: 4);
        var owner = pool.Rent();

        owner.Dispose();
        owner.Dispose();

        Assert.That(pool.FreeBlocks, Is.EqualTo(1));
        using var x = pool.Rent();
        using var y = pool.Rent();
        Assert.That(ArrayOf(y.Memory), Is.Not.SameAs(ArrayOf(x.Memory)));
        Assert.That(y, Is.Not.SameAs(x));
    }

    [Test]
    public void Returning_more_blocks_than_maximumRetained_keeps_only_maximumRetained_of_them()
    {
        using var pool = new SegmentPool(BlockSize, maximumRetained: 3);
        var owners = Enumerable.Range(0, 10).Select(_ => pool.Rent()).ToList();
        Assert.That(owners.Select(o => ArrayOf(o.Memory)).Distinct().Count(), Is.EqualTo(10), "ten rents, ten blocks");

        foreach (var owner in owners)
        {
            owner.Dispose();
        }

        Assert.That(pool.FreeBlocks, Is.EqualTo(3));
    }

    [Test]
    public void A_pool_that_retains_nothing_still_rents_fresh_blocks()
    {
        using var pool = new SegmentPool(BlockSize, maximumRetained: 0);
        var first = pool.Rent();
        first.Dispose();

        using var second = pool.Rent();

        Assert.That(pool.FreeBlocks, Is.Zero);
        Assert.That(second.Memory.Length, Is.EqualTo(BlockSize));
    }

    [Test]
    public void Rent_of_a_size_above_the_block_size_throws_ArgumentOutOfRangeException()
    {
        using var pool = new SegmentPool(BlockSize, maximumRetained: 4);

        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(BlockSize + 1));
        Assert.That(pool.FreeBlocks, Is.Zero);
    }

    [TestCase(0, 1)]
    [TestCase(1, -1)]
    public void The_constructor_rejects_a_block_size_below_1_and_a_negative_retention(int blockSize, int maximumRetained)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new SegmentPool(blockSize, maximumRetained));
    }

    [Test]
    public void CreateSegmentPool_makes_blocks_of_MinimumSegmentSize()
    {
        var options = new PipeProtocolOptions { MinimumSegmentSize = 8192 };

        using var pool = options.CreateSegmentPool();

        Assert.That(pool.MaxBufferSize, Is.EqualTo(8192));
        using var owner = pool.Rent();
        Assert.That(owner.Memory.Length, Is.EqualTo(8192));
    }

    [Test]
    public async Task As_a_pipes_pool_it_carries_several_MiB_intact_and_ends_with_the_pipes_blocks_back_in_it()
    {
        using var pool = new SegmentPool(BlockSize, maximumRetained: 64);
        var pipe = new Pipe(new PipeOptions(pool: pool, minimumSegmentSize: BlockSize, pauseWriterThreshold: 64 * 1024, resumeWriterThreshold: 32 * 1024, useSynchronizationContext: false));
        const int Total = 4 << 20;

        var writing = Task.Run(async () =>
        {
            var written = 0;
            while (written < Total)
            {
                var chunk = Math.Min(3000, Total - written); // not a divisor of the block size: writes straddle blocks
                var span = pipe.Writer.GetSpan(chunk);
                for (var i = 0; i < chunk; i++)
                {
                    span[i] = (byte)((written + i) % 251);
                }

                pipe.Writer.Advance(chunk);
                written += chunk;
                await pipe.Writer.FlushAsync();
            }

            await pipe.Writer.CompleteAsync();
        });

        long read = 0;
        var mismatches = 0;
        while (true)
        {
            var result = await pipe.Reader.ReadAsync().Bounded();
            foreach (var segment in result.Buffer)
            {
                foreach (var b in segment.Span)
                {
                    if (b != (byte)(read % 251))
                    {
                        mismatches++;
                    }

                    read++;
                }
            }

            pipe.Reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        await writing.Bounded();
        await pipe.Reader.CompleteAsync();

        Assert.That(read, Is.EqualTo(Total));
        Assert.That(mismatches, Is.Zero, "every byte arrives as written");
        Assert.That(pool.FreeBlocks, Is.GreaterThan(0), "the pipe returned its blocks to the pool");
        Assert.That(pool.FreeBlocks, Is.LessThanOrEqualTo(64));
    }

    [Test]
    public void Four_threads_renting_and_returning_in_parallel_never_hold_the_same_block_at_once()
    {
        using var pool = new SegmentPool(blockSize: 64, maximumRetained: 8);
        var held = new ConcurrentDictionary<byte[], int>(ReferenceEqualityComparer.Instance);
        var duplicates = 0;
        var corrupted = 0;
        const int Rounds = 50_000;

        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, worker =>
        {
            var mine = new List<IMemoryOwner<byte>>(3);
            for (var round = 0; round < Rounds; round++)
            {
                // Hold one to three blocks at a time, so that returns and rents interleave across threads.
                var owner = pool.Rent();
                var array = ArrayOf(owner.Memory);
                if (!held.TryAdd(array, worker))
                {
                    Interlocked.Increment(ref duplicates);
                }

                owner.Memory.Span.Fill((byte)worker);
                mine.Add(owner);
                if (mine.Count == 1 + (round % 3))
                {
                    foreach (var done in mine)
                    {
                        var doneArray = ArrayOf(done.Memory);
                        if (done.Memory.Span.IndexOfAnyExcept((byte)worker) >= 0)
                        {
                            Interlocked.Increment(ref corrupted);
                        }

                        held.TryRemove(doneArray, out _);
                        done.Dispose();
                    }

                    mine.Clear();
                }
            }

            foreach (var done in mine)
            {
                held.TryRemove(ArrayOf(done.Memory), out _);
                done.Dispose();
            }
        });

        Assert.That(duplicates, Is.Zero, "no block is rented to two holders at once");
        Assert.That(corrupted, Is.Zero, "no holder's block is written by another thread");
        Assert.That(pool.FreeBlocks, Is.InRange(1, 8));
    }

    private static byte[] ArrayOf(Memory<byte> memory)
    {
        Assert.That(MemoryMarshal.TryGetArray<byte>(memory, out var segment), Is.True, "blocks are arrays");
        return segment.Array!;
    }
}
