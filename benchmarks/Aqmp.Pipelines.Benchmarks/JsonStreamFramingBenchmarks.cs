using System.Buffers;
using System.Text;
using System.Text.Json;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Testing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks;

/// <summary>
/// Splitting a buffer of JSON objects (each followed by a line feed): <see cref="JsonStreamFramer"/>
/// against a hand-written <see cref="Utf8JsonReader"/> splitter (multiple top-level values allowed,
/// each skipped whole) over the same buffer. Each benchmark returns the bytes it saw and checks
/// the value count.
/// </summary>
[MemoryDiagnoser]
public class JsonStreamFramingBenchmarks
{
    private const int BufferBytes = 1024 * 1024;

    private readonly JsonStreamFramer _framer = new(maximumValueLength: 64 * 1024);
    private ReadOnlySequence<byte> _buffer;
    private int _expectedValues;

    /// <summary>Value length including the line feed after it.</summary>
    [Params(64, 4096)]
    public int ValueLength { get; set; }

    /// <summary>Segment size of the buffer: 0 for one segment, otherwise small segments values straddle.</summary>
    [Params(0, 1024)]
    public int SegmentSize { get; set; }

    /// <summary>Prepares a buffer of whole values: <c>{"execute":"x","arguments":{"s":"…"}}</c>, a quote escaped in each string.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _expectedValues = BufferBytes / ValueLength;
        const string head = "{\"execute\":\"x\",\"arguments\":{\"s\":\"\\\"";
        const string tail = "\"}}\n";
        var one = Encoding.ASCII.GetBytes(head + new string('a', ValueLength - head.Length - tail.Length) + tail);
        var bytes = new byte[_expectedValues * ValueLength];
        for (var i = 0; i < _expectedValues; i++)
        {
            one.CopyTo(bytes, i * ValueLength);
        }

        _buffer = SegmentSize == 0 ? new ReadOnlySequence<byte>(bytes) : SegmentedSequence.OfSegmentSizeWithoutCopying(bytes, SegmentSize);
    }

    /// <summary>The hand-written baseline: a validating reader that skips each top-level value.</summary>
    /// <returns>The value bytes seen.</returns>
    [Benchmark(Baseline = true)]
    public long Utf8JsonReaderSkip()
    {
        var reader = new Utf8JsonReader(_buffer, new JsonReaderOptions { AllowMultipleValues = true });
        long bytes = 0;
        var values = 0;
        while (reader.Read())
        {
            var start = reader.TokenStartIndex;
            reader.Skip();
            bytes += reader.BytesConsumed - start;
            values++;
        }

        return Verify(values, bytes);
    }

    /// <summary>The library's framer, driven as the session's read loop drives it.</summary>
    /// <returns>The value bytes seen.</returns>
    [Benchmark]
    public long JsonStreamFramerTryReadMessage()
    {
        var buffer = _buffer;
        var consumed = buffer.Start;
        var examined = buffer.Start;
        long bytes = 0;
        var values = 0;
        while (_framer.TryReadMessage(buffer, ref consumed, ref examined, out var value))
        {
            buffer = buffer.Slice(consumed);
            bytes += value.Length;
            values++;
        }

        return Verify(values, bytes);
    }

    private long Verify(int values, long bytes)
    {
        if (values != _expectedValues || bytes != (long)values * (ValueLength - 1))
        {
            throw new InvalidOperationException($"Split {values} values / {bytes} bytes, expected {_expectedValues} values.");
        }

        return bytes;
    }
}
