using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>
/// What the in-memory benchmarks share: <see cref="StreamBytes"/> (32 MiB) of LF-terminated lines
/// per operation, moved through <see cref="Pipe"/>s with a 1 MiB pause threshold and 64 KiB
/// segments (like a session's send buffer), a hand-written baseline in 64 KiB chunks, and one
/// session opened over a pipe pair and closed at clean-up.
/// </summary>
[Config(typeof(EndToEndStreamBenchmarks.StreamConfig))]
public abstract class InMemoryPipeBenchmarks
{
    /// <summary>Bytes one operation moves, terminators included.</summary>
    public const int StreamBytes = EndToEndStreamBenchmarks.StreamBytes;

    /// <summary>The hand-written baseline's write size.</summary>
    protected const int ChunkBytes = 64 * 1024;

    /// <summary>The options of every pipe.</summary>
    protected static readonly PipeOptions MemoryPipe = new(pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024, minimumSegmentSize: 64 * 1024, useSynchronizationContext: false);

    /// <summary>Line length including its LF.</summary>
    [Params(64, 4096)]
    public int LineLength { get; set; }

    /// <summary>The lines of one operation.</summary>
    protected int Lines => StreamBytes / LineLength;

    /// <summary>The session under test, once set up.</summary>
    protected IAsyncDisposable? Session { get; set; }

    /// <summary>Closes the session.</summary>
    [GlobalCleanup]
    public async Task Cleanup()
    {
        if (Session is not null)
        {
            await Session.DisposeAsync();
        }
    }
}
