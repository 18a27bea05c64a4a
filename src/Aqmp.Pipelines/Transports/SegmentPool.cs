using System.Buffers;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// The memory pool of a connection's pipes: blocks of one fixed size, kept for reuse up to a
/// bound, with their owner objects. A pipe running at its pause threshold cycles through dozens of
/// segments; the shared <see cref="ArrayPool{T}"/> keeps only a few arrays of a size per core, so
/// without this pool a busy session would allocate a fresh segment every few hundred messages.
/// </summary>
/// <remarks>
/// Thread-safe. Requests larger than <see cref="MaxBufferSize"/> are not made of it (the pipe
/// takes those from the shared array pool). Blocks are ordinary arrays: an idle pool holds at most
/// its retention bound and is collected with its owner.
/// </remarks>
public sealed class SegmentPool : MemoryPool<byte>
{
    private readonly Lock _gate = new();
    private readonly Block[] _free;
    private readonly int _blockSize;
    private int _count;

    /// <summary>Creates a pool.</summary>
    /// <param name="blockSize">The size of every block: the pipes' minimum segment size.</param>
    /// <param name="maximumRetained">How many returned blocks are kept for reuse; more are left to the garbage collector.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1, or the retention is negative.</exception>
    public SegmentPool(int blockSize, int maximumRetained)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maximumRetained);
        _blockSize = blockSize;
        _free = new Block[maximumRetained];
    }

    /// <summary>The size of every block.</summary>
    public override int MaxBufferSize => _blockSize;

    /// <summary>How many blocks are free for reuse now.</summary>
    public int FreeBlocks
    {
        get
        {
            lock (_gate)
            {
                return _count;
            }
        }
    }

    /// <summary>Rents a block of <see cref="MaxBufferSize"/> bytes; dispose the owner to return it.</summary>
    /// <param name="minBufferSize">At most <see cref="MaxBufferSize"/>; -1 for the default.</param>
    /// <returns>The owner of the block.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minBufferSize"/> is over the block size.</exception>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, _blockSize);
        lock (_gate)
        {
            if (_count > 0)
            {
                var block = _free[--_count];
                _free[_count] = null!;
                block.IsRented = true;
                return block;
            }
        }

        return new Block(this, new byte[_blockSize]);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        lock (_gate)
        {
            Array.Clear(_free, 0, _count);
            _count = 0;
        }
    }

    private void Return(Block block)
    {
        lock (_gate)
        {
            if (_count < _free.Length)
            {
                _free[_count++] = block;
            }
        }
    }

    /// <summary>One block and its owner object, reused together.</summary>
    private sealed class Block(SegmentPool pool, byte[] array) : IMemoryOwner<byte>
    {
        public bool IsRented { get; set; } = true;

        public Memory<byte> Memory => array;

        public void Dispose()
        {
            // A second dispose of the same rental must not put the block in the pool twice.
            if (IsRented)
            {
                IsRented = false;
                pool.Return(this);
            }
        }
    }
}
