namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>
/// Random I/O sizes and pauses for one side of a chunked transfer, all drawn from one seeded
/// generator (so a seed replays the same schedule): sizes from 1 byte to 64 KiB, skewed so that
/// many are tiny and some are large; rare pauses, mostly yields and now and then a short sleep.
/// </summary>
internal sealed class ChunkSchedule(Random random)
{
    /// <summary>The largest write or read size.</summary>
    public const int MaximumSize = 64 * 1024;

    /// <summary>The generator the schedule draws from.</summary>
    public Random Random { get; } = random;

    /// <summary>How many pauses yielded the thread.</summary>
    public int Yields { get; private set; }

    /// <summary>How many pauses slept.</summary>
    public int Sleeps { get; private set; }

    /// <summary>The next write or read size: 1 B to 64 KiB, a third of them 8 bytes or fewer.</summary>
    /// <returns>The size.</returns>
    public int NextSize() => Random.Next(100) switch
    {
        < 35 => Random.Next(1, 9),
        < 60 => Random.Next(9, 257),
        < 80 => Random.Next(257, 4097),
        < 95 => Random.Next(4097, 32769),
        _ => Random.Next(32769, MaximumSize + 1),
    };

    /// <summary>Usually nothing; about one call in a hundred yields, one in five hundred sleeps 1–2 ms.</summary>
    /// <returns>The pause.</returns>
    public Task PauseAsync()
    {
        var roll = Random.Next(1000);
        if (roll < 2)
        {
            Sleeps++;
            return Task.Delay(Random.Next(1, 3));
        }

        if (roll < 12)
        {
            Yields++;
            return YieldAsync();
        }

        return Task.CompletedTask;
    }

    private static async Task YieldAsync() => await Task.Yield();
}
