using System.Buffers;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Testing;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.Qmp;

/// <summary>
/// Decoding QEMU 7.2's <c>query-qmp-schema</c> reply (one line of about 207 KB, 1051 entries):
/// <see cref="QmpMessage.Parse(in ReadOnlySequence{byte})"/> from one segment and from 4 KiB
/// segments, and <see cref="QmpFramer"/>'s <c>TryReadMessage</c> (line search, CRLF strip, parse)
/// over the same two layouts. The parse necessarily copies the JSON into the message's
/// <see cref="JsonElement"/>: the allocation column shows how much that costs per message.
/// Every benchmark checks the reply's kind, id and array length.
/// </summary>
[MemoryDiagnoser]
[QmpShortJob]
public class QmpSchemaDecodeBenchmarks
{
    /// <summary>The entries of QEMU 7.2.22's schema (<c>-M none</c>).</summary>
    public const int SchemaEntries = 1051;

    private const int SegmentSize = 4 * 1024;

    private readonly QmpFramer _framer = new();
    private ReadOnlySequence<byte> _jsonSingle;
    private ReadOnlySequence<byte> _jsonSegmented;
    private ReadOnlySequence<byte> _lineSingle;
    private ReadOnlySequence<byte> _lineSegmented;

    /// <summary>Loads the fixture: the JSON alone, and the line as received (CRLF included), each in one segment and in 4 KiB segments.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var line = File.ReadAllBytes(QmpBenchmarkData.SchemaPath);
        if (line.Length < 200_000 || !line.AsSpan().EndsWith("\r\n"u8) || line.AsSpan(0, line.Length - 2).Contains((byte)'\n'))
        {
            throw new InvalidOperationException($"{QmpBenchmarkData.SchemaPath} is not one CRLF-terminated line of about 207 KB.");
        }

        var json = line.AsSpan(0, line.Length - 2);
        _jsonSingle = new ReadOnlySequence<byte>(json.ToArray());
        _jsonSegmented = SegmentedSequence.OfSegmentSize(json, SegmentSize);
        _lineSingle = new ReadOnlySequence<byte>(line);
        _lineSegmented = SegmentedSequence.OfSegmentSize(line, SegmentSize);
        if (_jsonSegmented.IsSingleSegment || _lineSegmented.IsSingleSegment || _lineSegmented.Length != line.Length)
        {
            throw new InvalidOperationException("The segmented sequences were not built as intended.");
        }
    }

    /// <summary>The JSON in one contiguous segment.</summary>
    /// <returns>The message.</returns>
    [Benchmark(Baseline = true)]
    public QmpMessage ParseSingleSegment() => Verify(QmpMessage.Parse(_jsonSingle));

    /// <summary>The JSON split into 4 KiB segments.</summary>
    /// <returns>The message.</returns>
    [Benchmark]
    public QmpMessage ParseSegmented4KiB() => Verify(QmpMessage.Parse(_jsonSegmented));

    /// <summary>The framer over the line in one segment.</summary>
    /// <returns>The message.</returns>
    [Benchmark]
    public QmpMessage FramerSingleSegment() => ReadFrame(_lineSingle);

    /// <summary>The framer over the line in 4 KiB segments (the line straddles them all).</summary>
    /// <returns>The message.</returns>
    [Benchmark]
    public QmpMessage FramerSegmented4KiB() => ReadFrame(_lineSegmented);

    private QmpMessage ReadFrame(in ReadOnlySequence<byte> input)
    {
        var consumed = input.Start;
        var examined = input.Start;
        if (!_framer.TryReadMessage(input, ref consumed, ref examined, out var message))
        {
            throw new InvalidOperationException("The framer found no complete line.");
        }

        if (input.Slice(consumed).Length != 0 || input.Slice(examined).Length != 0)
        {
            throw new InvalidOperationException("The framer did not consume the whole line.");
        }

        return Verify(message);
    }

    private static QmpMessage Verify(QmpMessage message)
    {
        if (message.Kind != QmpMessageKind.Return
            || message.ReturnValue is not { ValueKind: JsonValueKind.Array } entries
            || entries.GetArrayLength() != SchemaEntries
            || message.Id is not { ValueKind: JsonValueKind.Number } id || id.GetInt32() != 3)
        {
            throw new InvalidOperationException($"Unexpected schema reply: {message.Kind}, {message.ReturnValue?.ValueKind}, id {message.Id}.");
        }

        return message;
    }
}
