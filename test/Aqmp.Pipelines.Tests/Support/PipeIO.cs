using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>Reading and writing helpers for pipes in transport tests.</summary>
internal static class PipeIO
{
    private const int Period = 251;
    private const int MaxBlock = 1024 * 1024;

    /// <summary>The test pattern from offset 0, long enough to copy any block of up to <see cref="MaxBlock"/> bytes from any phase.</summary>
    private static readonly byte[] Pattern = Enumerable.Range(0, MaxBlock + Period).Select(i => PatternAt(i)).ToArray();

    /// <summary>The byte at <paramref name="offset"/> of the test pattern (a period of 251, a prime, so chunk edges never line up).</summary>
    public static byte PatternAt(long offset) => (byte)(offset % Period);

    /// <summary>A token that fires after <see cref="TestTimeouts.Default"/>.</summary>
    public static CancellationTokenSource Timeout() => new(TestTimeouts.Default);

    /// <summary>Writes <paramref name="total"/> pattern bytes, flushing after every <paramref name="chunk"/> bytes.</summary>
    public static async Task WritePatternAsync(PipeWriter writer, long total, int chunk, CancellationToken cancellationToken)
    {
        long offset = 0;
        while (offset < total)
        {
            var size = (int)Math.Min(Math.Min(chunk, MaxBlock), total - offset);
            Pattern.AsSpan((int)(offset % Period), size).CopyTo(writer.GetSpan(size));
            writer.Advance(size);
            offset += size;
            var flush = await writer.FlushAsync(cancellationToken);
            if (flush.IsCompleted && offset < total)
            {
                throw new IOException($"The reader went away after {offset} of {total} bytes.");
            }
        }
    }

    /// <summary>
    /// Reads until the end of the stream, checking that the bytes follow the test pattern; returns how many arrived.
    /// </summary>
    public static Task<long> ReadPatternToEndAsync(PipeReader reader, CancellationToken cancellationToken)
        => ReadPatternAsync(reader, long.MaxValue, cancellationToken);

    /// <summary>
    /// Reads <paramref name="limit"/> bytes or until the end of the stream, whichever comes first, checking that
    /// the bytes follow the test pattern; returns how many were read.
    /// </summary>
    public static async Task<long> ReadPatternAsync(PipeReader reader, long limit, CancellationToken cancellationToken)
    {
        long offset = 0;
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer.Length > limit - offset ? result.Buffer.Slice(0, limit - offset) : result.Buffer;
            foreach (var segment in buffer)
            {
                for (var start = 0; start < segment.Length; start += MaxBlock)
                {
                    var span = segment.Span.Slice(start, Math.Min(MaxBlock, segment.Length - start));
                    var expected = Pattern.AsSpan((int)(offset % Period), span.Length);
                    if (!span.SequenceEqual(expected))
                    {
                        var at = span.CommonPrefixLength(expected);
                        Assert.Fail($"Byte {offset + at} is {span[at]}, expected {expected[at]}.");
                    }

                    offset += span.Length;
                }
            }

            reader.AdvanceTo(buffer.End);
            if (offset >= limit || result.IsCompleted)
            {
                return offset;
            }
        }
    }

    /// <summary>Writes and flushes <paramref name="data"/>.</summary>
    public static async Task WriteAsync(PipeWriter writer, byte[] data, CancellationToken cancellationToken = default)
    {
        using var timeout = Timeout();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        await writer.WriteAsync(data, linked.Token);
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes (fails if the stream ends first).</summary>
    public static async Task<byte[]> ReadExactlyAsync(PipeReader reader, int count, CancellationToken cancellationToken = default)
    {
        using var timeout = Timeout();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        while (true)
        {
            var result = await reader.ReadAsync(linked.Token);
            if (result.Buffer.Length >= count)
            {
                var bytes = result.Buffer.Slice(0, count).ToArray();
                reader.AdvanceTo(result.Buffer.GetPosition(count));
                return bytes;
            }

            if (result.IsCompleted)
            {
                throw new EndOfStreamException($"The stream ended after {result.Buffer.Length} of {count} bytes.");
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>
    /// Reads and discards until the stream ends, either cleanly (returns <see langword="null"/>) or with an
    /// I/O or socket error (returns it); the count of bytes that arrived is in <paramref name="received"/>.
    /// </summary>
    public static async Task<(long Received, Exception? Error)> DrainAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        long received = 0;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken);
                received += result.Buffer.Length;
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    return (received, null);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            return (received, ex);
        }
    }
}
