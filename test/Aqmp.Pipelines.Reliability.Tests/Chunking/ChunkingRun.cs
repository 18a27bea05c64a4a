using System.Net.Sockets;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>What the chunking fixtures share: seeded session options, Unix sockets, captured outcomes.</summary>
internal static class ChunkingRun
{
    /// <summary>The bound of one whole transfer (generous: a healthy one takes a few seconds).</summary>
    public static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Session options drawn from the seed: pipe segments from 512 B (lines straddle many of them)
    /// to the default 16 KiB, reads of 512 B to the default 64 KiB (with or without a zero-byte wait), and a short or the
    /// default outbound queue and batch.
    /// </summary>
    /// <param name="random">The seeded generator.</param>
    /// <returns>The options.</returns>
    public static PipeProtocolOptions RandomOptions(Random random)
    {
        int[] segments = [512, 4096, 16 * 1024];
        int[] reads = [512, 4096, 64 * 1024];
        var shortQueue = random.Next(2) == 0;
        return new PipeProtocolOptions
        {
            MinimumSegmentSize = segments[random.Next(segments.Length)],
            ReceiveBufferSize = reads[random.Next(reads.Length)],
            WaitForDataBeforeAllocatingBuffer = random.Next(2) == 0,
            OutboundBatchBytes = shortQueue ? 1024 : 64 * 1024,
            SendPauseThreshold = shortQueue ? 16 * 1024 : 1024 * 1024,
            SendResumeThreshold = shortQueue ? 8 * 1024 : 512 * 1024,
        };
    }

    /// <summary>The options that matter here, for the progress log.</summary>
    /// <param name="options">The options.</param>
    /// <returns>A short description.</returns>
    public static string Describe(PipeProtocolOptions options)
        => $"segments {options.MinimumSegmentSize} B, reads of {options.ReceiveBufferSize} B{(options.WaitForDataBeforeAllocatingBuffer ? " after a zero-byte wait" : "")}, "
            + $"send pause {options.SendPauseThreshold / 1024} KiB, batch {options.OutboundBatchBytes} B";

    /// <summary>A listening Unix-domain socket (backlog 1) at <paramref name="endPoint"/>.</summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <returns>The listener.</returns>
    public static Socket ListenUnix(UnixDomainSocketEndPoint endPoint)
    {
        var listener = NewUnixSocket();
        listener.Bind(endPoint);
        listener.Listen(1);
        return listener;
    }

    /// <summary>A fresh Unix-domain stream socket.</summary>
    /// <returns>The socket.</returns>
    public static Socket NewUnixSocket() => new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);

    /// <summary>Runs <paramref name="action"/> and returns what it threw, or null.</summary>
    /// <param name="action">The action.</param>
    /// <returns>The exception, or null.</returns>
    public static async Task<Exception?> CaptureAsync(Func<Task> action)
    {
        try
        {
            await action().ConfigureAwait(false);
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }
}
