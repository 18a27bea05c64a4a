using System.Buffers;
using System.Text.Json;

namespace Aqmp.Pipelines.Benchmarks.Qmp;

/// <summary>Checks shared by the QMP benchmarks; each throws on a wrong result.</summary>
internal static class QmpVerify
{
    /// <summary>Throws unless <paramref name="status"/> is a <c>query-status</c> return value of a running machine.</summary>
    /// <param name="status">The <c>return</c> value.</param>
    public static void Running(JsonElement status)
    {
        if (status.ValueKind != JsonValueKind.Object
            || !status.TryGetProperty("status", out var name) || name.ValueKind != JsonValueKind.String || !name.ValueEquals("running")
            || !status.TryGetProperty("running", out var running) || running.ValueKind != JsonValueKind.True)
        {
            throw new InvalidOperationException($"Unexpected query-status reply: {status.GetRawText()}");
        }
    }
}

/// <summary>The data files copied next to the benchmark assembly from <c>benchmarks/data</c>.</summary>
internal static class QmpBenchmarkData
{
    /// <summary>The full path of QEMU 7.2's <c>query-qmp-schema</c> reply (one line, CRLF-terminated).</summary>
    public static string SchemaPath => Find("query-qmp-schema.json");

    /// <summary>
    /// Finds <c>data/<paramref name="name"/></c> next to the running assembly or in a parent directory
    /// (BenchmarkDotNet runs a generated project whose output lies below this project's).
    /// </summary>
    private static string Find(string name)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "data", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"data/{name} was found neither in {AppContext.BaseDirectory} nor above it.", name);
    }
}

/// <summary>One segment of a hand-built multi-segment <see cref="ReadOnlySequence{T}"/>.</summary>
internal sealed class BufferSegment : ReadOnlySequenceSegment<byte>
{
    private BufferSegment(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    /// <summary>
    /// Copies <paramref name="bytes"/> into separate arrays of <paramref name="segmentSize"/> bytes
    /// (the last one shorter), chained as one sequence, as a pipe holds a long message.
    /// </summary>
    /// <param name="bytes">The content.</param>
    /// <param name="segmentSize">The size of every segment but the last.</param>
    /// <returns>The sequence.</returns>
    public static ReadOnlySequence<byte> Split(ReadOnlySpan<byte> bytes, int segmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(segmentSize, 1);
        ArgumentOutOfRangeException.ThrowIfZero(bytes.Length);
        var first = new BufferSegment(bytes[..Math.Min(segmentSize, bytes.Length)].ToArray(), 0);
        var last = first;
        for (var offset = last.Memory.Length; offset < bytes.Length; offset += segmentSize)
        {
            var next = new BufferSegment(bytes.Slice(offset, Math.Min(segmentSize, bytes.Length - offset)).ToArray(), offset);
            last.Next = next;
            last = next;
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
