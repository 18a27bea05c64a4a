using System.Buffers;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks;

/// <summary>
/// One long line arriving over many reads of one 16 KiB segment each (the session's default
/// segment size), parsed after every read as the session's read loop does: with the
/// <c>examined</c> position of the previous read handed back (<see cref="Resumed"/>, what the
/// session does), against the framer searching the whole partial line again on every read
/// (<see cref="Rescanned"/>, a caller that always passes the input's start). Rescanning costs
/// the square of the line length over the read size; resuming, the line length.
/// </summary>
[MemoryDiagnoser]
public class LongLineFramingBenchmarks
{
    private const int ReadBytes = 16 * 1024;

    private readonly LineFramer _framer = new(maximumLineLength: 16 * 1024 * 1024);
    private ReadOnlySequence<byte> _line;

    /// <summary>Line length including its LF.</summary>
    [Params(256 * 1024, 4 * 1024 * 1024)]
    public int LineLength { get; set; }

    /// <summary>Builds the line in 16 KiB segments.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var bytes = new byte[LineLength];
        for (var i = 0; i < bytes.Length - 1; i++)
        {
            bytes[i] = (byte)('a' + (i % 26));
        }

        bytes[^1] = (byte)'\n';
        _line = SegmentedSequence.OfSegmentSizeWithoutCopying(bytes, ReadBytes);
    }

    /// <summary>Every read searched from the start of the line.</summary>
    /// <returns>The line's length.</returns>
    [Benchmark(Baseline = true)]
    public long Rescanned() => ParseAsReadsArrive(carryExamined: false);

    /// <summary>Every read searched from where the previous one stopped.</summary>
    /// <returns>The line's length.</returns>
    [Benchmark]
    public long Resumed() => ParseAsReadsArrive(carryExamined: true);

    private long ParseAsReadsArrive(bool carryExamined)
    {
        SequencePosition resume = default;
        for (long arrived = ReadBytes; ; arrived += ReadBytes)
        {
            var buffer = _line.Slice(0, Math.Min(arrived, _line.Length));
            var consumed = buffer.Start;
            var examined = carryExamined && resume.GetObject() is not null ? resume : buffer.Start;
            if (_framer.TryReadMessage(buffer, ref consumed, ref examined, out var line))
            {
                if (line.Length != LineLength - 1 || buffer.Length != _line.Length)
                {
                    throw new InvalidOperationException($"Parsed a {line.Length}-byte line after {buffer.Length} bytes, expected {LineLength - 1} after {_line.Length}.");
                }

                return line.Length;
            }

            resume = examined;
        }
    }
}
