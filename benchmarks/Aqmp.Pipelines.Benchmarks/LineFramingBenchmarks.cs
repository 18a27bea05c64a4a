using System.Buffers;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks;

/// <summary>
/// Parsing a buffer of lines: <see cref="LineFramer"/> against a hand-written
/// <see cref="SequenceReader{T}.TryReadTo(out ReadOnlySequence{T}, T, bool)"/> loop over the same
/// buffer. Each benchmark returns the bytes it saw and checks the frame count.
/// </summary>
[MemoryDiagnoser]
public class LineFramingBenchmarks
{
    private const int BufferBytes = 1024 * 1024;

    private readonly LineFramer _framer = new(maximumLineLength: 64 * 1024);
    private ReadOnlySequence<byte> _buffer;
    private int _expectedFrames;

    /// <summary>Line length including its LF.</summary>
    [Params(64, 4096)]
    public int LineLength { get; set; }

    /// <summary>Segment size of the buffer: 0 for one segment, otherwise small segments lines straddle.</summary>
    [Params(0, 1024)]
    public int SegmentSize { get; set; }

    /// <summary>Prepares a single-segment buffer of whole lines.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _expectedFrames = BufferBytes / LineLength;
        var bytes = new byte[_expectedFrames * LineLength];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (i + 1) % LineLength == 0 ? (byte)'\n' : (byte)('a' + (i % 26));
        }

        _buffer = SegmentSize == 0 ? new ReadOnlySequence<byte>(bytes) : SegmentedSequence.OfSegmentSizeWithoutCopying(bytes, SegmentSize);
    }

    /// <summary>The hand-written baseline.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark(Baseline = true)]
    public long SequenceReaderTryReadTo()
    {
        var reader = new SequenceReader<byte>(_buffer);
        long bytes = 0;
        var frames = 0;
        while (reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
        {
            bytes += line.Length;
            frames++;
        }

        return Verify(frames, bytes);
    }

    /// <summary>The library's framer, driven as the session's read loop drives it.</summary>
    /// <returns>The payload bytes seen.</returns>
    [Benchmark]
    public long LineFramerTryReadMessage()
    {
        var buffer = _buffer;
        var consumed = buffer.Start;
        var examined = buffer.Start;
        long bytes = 0;
        var frames = 0;
        while (_framer.TryReadMessage(buffer, ref consumed, ref examined, out var line))
        {
            buffer = buffer.Slice(consumed);
            bytes += line.Length;
            frames++;
        }

        return Verify(frames, bytes);
    }

    private long Verify(int frames, long bytes)
    {
        if (frames != _expectedFrames || bytes != (long)frames * (LineLength - 1))
        {
            throw new InvalidOperationException($"Parsed {frames} frames / {bytes} bytes, expected {_expectedFrames} frames.");
        }

        return bytes;
    }
}
