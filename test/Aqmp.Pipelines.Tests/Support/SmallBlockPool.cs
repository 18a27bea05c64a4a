using System.Buffers;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>A pool of blocks of exactly one size, so that a pipe built on it has segments that small.</summary>
internal sealed class SmallBlockPool(int size) : MemoryPool<byte>
{
    public override int MaxBufferSize => size;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1) => new Block(new byte[size]);

    protected override void Dispose(bool disposing)
    {
    }

    private sealed class Block(byte[] array) : IMemoryOwner<byte>
    {
        public Memory<byte> Memory => array;

        public void Dispose()
        {
        }
    }
}
