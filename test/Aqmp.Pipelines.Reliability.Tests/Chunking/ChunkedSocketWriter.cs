using System.Buffers;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>
/// Writes a frame source's byte stream to a raw socket in randomly sized writes, with random
/// pauses, then shuts down its sending side (FIN). One write in five is cut at a delimiter
/// instead: just before a line feed (between the CR and LF of a CRLF), or just after it.
/// </summary>
/// <param name="schedule">The write sizes and pauses.</param>
/// <param name="limitLineLength">
/// A line length to watch: writes that end between the CR and LF of a line of exactly this length
/// (a framer's limit: the moment it holds limit + 1 bytes without a line feed) are counted.
/// </param>
internal sealed class ChunkedSocketWriter(ChunkSchedule schedule, int? limitLineLength = null)
{
    // Frames are buffered ahead until this much is waiting, so that any write size can be served.
    private const int BufferAhead = 2 * ChunkSchedule.MaximumSize;

    private byte[] _buffer = new byte[4 * ChunkSchedule.MaximumSize];
    private int _start;
    private int _end;

    /// <summary>How many socket writes were made.</summary>
    public long Writes { get; private set; }

    /// <summary>How many bytes were written.</summary>
    public long Bytes { get; private set; }

    /// <summary>How many writes ended between the CR and LF of a line of the watched length.</summary>
    public long CutsInLimitCrLf { get; private set; }

    /// <summary>How many writes were cut at a line feed.</summary>
    public long DelimiterCuts { get; private set; }

    /// <summary>Sends every frame of <paramref name="source"/>, then shuts down the sending side.</summary>
    /// <param name="socket">A connected stream socket.</param>
    /// <param name="source">The frames.</param>
    /// <param name="cancellationToken">Abandons the transfer.</param>
    /// <returns>A task that completes when everything is written.</returns>
    public async Task SendAllAsync(Socket socket, IFrameSource source, CancellationToken cancellationToken)
    {
        var appender = new Appender(this);
        var exhausted = false;
        while (true)
        {
            while (!exhausted && _end - _start < BufferAhead)
            {
                exhausted = !source.TryAppendNext(appender);
            }

            if (_end == _start)
            {
                break;
            }

            var size = NextWriteSize();
            var chunk = _buffer.AsMemory(_start, size);
            while (!chunk.IsEmpty)
            {
                var sent = await socket.SendAsync(chunk, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                chunk = chunk[sent..];
            }

            CountLimitCut(_start + size);
            _start += size;
            Writes++;
            Bytes += size;
            await schedule.PauseAsync().ConfigureAwait(false);
        }

        socket.Shutdown(SocketShutdown.Send);
    }

    private int NextWriteSize()
    {
        var available = _end - _start;
        if (schedule.Random.Next(5) == 0)
        {
            var window = _buffer.AsSpan(_start, Math.Min(available, ChunkSchedule.MaximumSize));
            var lineFeed = window.IndexOf((byte)'\n');
            if (lineFeed >= 0)
            {
                DelimiterCuts++;
                var cut = schedule.Random.Next(2) == 0 ? lineFeed : lineFeed + 1;
                return Math.Max(cut, 1);
            }
        }

        return Math.Min(schedule.NextSize(), available);
    }

    private void CountLimitCut(int end)
    {
        if (limitLineLength is not { } limit || end >= _end || _buffer[end] != (byte)'\n' || _buffer[end - 1] != (byte)'\r' || end - 1 < limit)
        {
            return;
        }

        // The line started after the previous line feed: it must be exactly the limit long.
        var lineStart = end - 1 - limit;
        if ((lineStart == 0 || _buffer[lineStart - 1] == (byte)'\n') && _buffer.AsSpan(lineStart, limit).IndexOf((byte)'\n') < 0)
        {
            CutsInLimitCrLf++;
        }
    }

    /// <summary>Makes room for <paramref name="sizeHint"/> more bytes at the end, moving or growing the buffer.</summary>
    private void Reserve(int sizeHint)
    {
        sizeHint = Math.Max(sizeHint, 1);
        if (_buffer.Length - _end >= sizeHint)
        {
            return;
        }

        var pending = _end - _start;
        var target = _buffer.Length - pending >= sizeHint ? _buffer : new byte[Math.Max(_buffer.Length * 2, pending + sizeHint)];
        Buffer.BlockCopy(_buffer, _start, target, 0, pending);
        _buffer = target;
        _start = 0;
        _end = pending;
    }

    private sealed class Appender(ChunkedSocketWriter owner) : IBufferWriter<byte>
    {
        public void Advance(int count) => owner._end += count;

        public Memory<byte> GetMemory(int sizeHint = 0)
        {
            owner.Reserve(Math.Max(sizeHint, 4096));
            return owner._buffer.AsMemory(owner._end);
        }

        public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;
    }
}
