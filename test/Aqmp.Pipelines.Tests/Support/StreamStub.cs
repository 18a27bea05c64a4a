namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// The parts of a <see cref="Stream"/> that test doubles do not use: not seekable, no length,
/// flushing does nothing, and the synchronous array reads and writes are unsupported unless a
/// double overrides them. A double states only what it can do.
/// </summary>
internal abstract class StreamStub : Stream
{
    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
