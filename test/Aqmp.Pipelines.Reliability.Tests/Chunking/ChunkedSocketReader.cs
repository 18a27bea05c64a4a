using System.Net.Sockets;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>
/// Reads a raw socket to its end in randomly sized receives, with random pauses, and checks the
/// byte stream, as it arrives, against a regenerated <see cref="LineFrameStream"/>'s wire bytes.
/// </summary>
internal sealed class ChunkedSocketReader(ChunkSchedule schedule, LineFrameStream expected)
{
    private ReadOnlyMemory<byte> _frame;
    private int _frameIndex = -1;
    private int _offsetInFrame;

    /// <summary>How many receive calls returned data.</summary>
    public long Reads { get; private set; }

    /// <summary>How many bytes arrived and matched.</summary>
    public long Bytes { get; private set; }

    /// <summary>How many whole lines arrived and matched.</summary>
    public int Lines => _frameIndex < 0 ? 0 : _offsetInFrame == _frame.Length ? _frameIndex + 1 : _frameIndex;

    /// <summary>Reads until the peer ends the stream.</summary>
    /// <param name="socket">A connected stream socket.</param>
    /// <param name="cancellationToken">Abandons the transfer.</param>
    /// <returns>Null when the stream held exactly the expected lines; otherwise where it went wrong.</returns>
    public async Task<string?> ReadToEndAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[ChunkSchedule.MaximumSize];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(0, schedule.NextSize()), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return Lines == expected.Count ? null : $"The stream ended after {Lines} whole lines and {Bytes} bytes; {expected.Count} lines were sent.";
            }

            Reads++;
            if (Check(buffer.AsSpan(0, read)) is { } mismatch)
            {
                return mismatch;
            }

            await schedule.PauseAsync().ConfigureAwait(false);
        }
    }

    private string? Check(ReadOnlySpan<byte> received)
    {
        while (!received.IsEmpty)
        {
            if (_offsetInFrame == _frame.Length)
            {
                if (expected.Produced == expected.Count)
                {
                    return $"{received.Length} bytes arrived after the last of the {expected.Count} lines (stream byte {Bytes}).";
                }

                var next = expected.Next();
                _frame = next.Wire;
                _frameIndex = next.Index;
                _offsetInFrame = 0;
            }

            var common = Math.Min(received.Length, _frame.Length - _offsetInFrame);
            var expectedBytes = _frame.Span.Slice(_offsetInFrame, common);
            var same = received[..common].CommonPrefixLength(expectedBytes);
            if (same < common)
            {
                return $"Line {_frameIndex} differs at wire byte {_offsetInFrame + same} of {_frame.Length} (stream byte {Bytes + same}): "
                    + $"0x{received[same]:X2} arrived, 0x{expectedBytes[same]:X2} expected.";
            }

            received = received[common..];
            _offsetInFrame += common;
            Bytes += common;
        }

        return null;
    }
}
