using System.Buffers;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// What the binary framer benchmarks share: a 1 MiB buffer of identical frames, in one segment or
/// in small segments that frames straddle, read by a framer as the session's read loop reads it, or
/// by a hand-written loop for the same format. Each benchmark returns the payload bytes it saw and
/// checks the frame count.
/// </summary>
[MemoryDiagnoser]
public abstract class BinaryFramingBenchmarks
{
    private const int BufferBytes = 1024 * 1024;

    private int _expectedFrames;

    /// <summary>Payload length of every frame.</summary>
    [Params(64, 4096)]
    public int PayloadLength { get; set; }

    /// <summary>Segment size of the buffer: 0 for one segment, otherwise small segments frames straddle.</summary>
    [Params(0, 1024)]
    public int SegmentSize { get; set; }

    /// <summary>The buffer of frames.</summary>
    protected ReadOnlySequence<byte> Buffer { get; private set; }

    /// <summary>Prepares the buffer of whole frames.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var payload = Enumerable.Range(0, PayloadLength).Select(i => (byte)('a' + (i % 26))).ToArray();
        var frame = Frame(payload);
        _expectedFrames = BufferBytes / frame.Length;
        var bytes = new byte[_expectedFrames * frame.Length];
        for (var i = 0; i < _expectedFrames; i++)
        {
            frame.CopyTo(bytes, i * frame.Length);
        }

        Buffer = SegmentSize == 0 ? new ReadOnlySequence<byte>(bytes) : SegmentedSequence.OfSegmentSizeWithoutCopying(bytes, SegmentSize);
    }

    /// <summary>One frame of the format around <paramref name="payload"/>.</summary>
    protected abstract byte[] Frame(byte[] payload);

    /// <summary>Reads every frame with <paramref name="framer"/>, driven as the session's read loop drives it.</summary>
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
