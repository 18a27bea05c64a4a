using System.Buffers;
using System.Runtime.CompilerServices;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;
using BenchmarkDotNet.Attributes;
using DotNetty.Buffers;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// What the binary framer benchmarks share: a 1 MiB buffer of identical frames, in one segment or
/// in 1 KiB segments that frames straddle, read to its end by one of:
/// <list type="bullet">
/// <item>a framer (the library's, or a hand-written one for the same format) driven by
/// <see cref="ReadWith"/> exactly as the session's read loop drives a framer: the buffer is sliced
/// past each frame's <c>consumed</c> position and handed back, through the
/// <see cref="IMessageFramer{TMessage}"/> interface;</item>
/// <item>a raw loop owning the whole buffer (no framer contract: no positions handed back, no
/// slice per call), for scale;</item>
/// <item>DotNetty 0.7.6's decoder for the format (<see cref="DotNettyReference"/>), for reference.</item>
/// </list>
/// Each benchmark returns the payload bytes it saw and checks the frame count, so a fast-but-wrong
/// row throws.
/// </summary>
[MemoryDiagnoser]
public abstract class BinaryFramingBenchmarks
{
    /// <summary>The limit every framer and decoder is given: far above the frames read.</summary>
    protected const int MaximumPayloadLength = 64 * 1024;

    private const int BufferBytes = 1024 * 1024;

    private int _expectedFrames;
    private byte[] _bytes = [];
    private IByteBuffer? _nettyBuffer;

    /// <summary>Payload length of every frame.</summary>
    [Params(64, 4096)]
    public int PayloadLength { get; set; }

    /// <summary>Segment size of the buffer: 0 for one segment, otherwise small segments frames straddle.</summary>
    [Params(0, 1024)]
    public int SegmentSize { get; set; }

    /// <summary>The buffer of frames.</summary>
    protected ReadOnlySequence<byte> Buffer { get; private set; }

    /// <summary>The same bytes as <see cref="Buffer"/>, wrapped for DotNetty.</summary>
    protected IByteBuffer NettyBuffer => _nettyBuffer ??= DotNettyReference.Wrap(_bytes, SegmentSize);

    /// <summary>Prepares the buffer of whole frames.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var payload = Enumerable.Range(0, PayloadLength).Select(i => (byte)('a' + (i % 26))).ToArray();
        var frame = Frame(payload);
        _expectedFrames = BufferBytes / frame.Length;
        _bytes = new byte[_expectedFrames * frame.Length];
        for (var i = 0; i < _expectedFrames; i++)
        {
            frame.CopyTo(_bytes, i * frame.Length);
        }

        Buffer = SegmentSize == 0 ? new ReadOnlySequence<byte>(_bytes) : SegmentedSequence.OfSegmentSizeWithoutCopying(_bytes, SegmentSize);
        _nettyBuffer = null;
    }

    /// <summary>One frame of the format around <paramref name="payload"/>.</summary>
    protected abstract byte[] Frame(byte[] payload);

    /// <summary>
    /// Reads every frame with <paramref name="framer"/>, driven as the session's read loop drives it.
    /// Inlined into each benchmark, so that each has its own interface call site, profiled for its
    /// own framer, as a session's read loop is for the one framer it runs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected long ReadWith(IMessageFramer<ReadOnlySequence<byte>> framer)
    {
        var buffer = Buffer;
        var consumed = buffer.Start;
        var examined = buffer.Start;
        long bytes = 0;
        var frames = 0;
        while (framer.TryReadMessage(buffer, ref consumed, ref examined, out var payload))
        {
            buffer = buffer.Slice(consumed);
            bytes += payload.Length;
            frames++;
        }

        return Verify(frames, bytes);
    }

    /// <summary>Reads every frame of <see cref="NettyBuffer"/> with a DotNetty decoder's per-frame method.</summary>
    protected long DecodeWith(Func<IByteBuffer, object?> decodeOne)
    {
        var (frames, bytes) = DotNettyReference.DecodeAll(NettyBuffer, decodeOne);
        return Verify(frames, bytes);
    }

    /// <summary>Checks what a loop saw against the buffer's content.</summary>
    protected long Verify(int frames, long bytes)
    {
        if (frames != _expectedFrames || bytes != (long)frames * PayloadLength)
        {
            throw new InvalidOperationException($"Parsed {frames} frames / {bytes} bytes, expected {_expectedFrames} frames.");
        }

        return bytes;
    }
}
