namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// The seed of a randomized test: <c>AQMP_FUZZ_SEED</c> when set (to replay a failure), else the
/// test's fixed seed if it has one, else a fresh one. The seed is printed before the test runs, so
/// a failure always says how to replay it.
/// </summary>
internal static class FuzzSeed
{
    /// <summary>The environment variable that replays a seed.</summary>
    public const string Variable = "AQMP_FUZZ_SEED";

    /// <summary>Picks the seed, prints it with the replay command, and returns a generator seeded with it.</summary>
    /// <param name="seed">The seed picked.</param>
    /// <param name="fixedSeed">The seed to use when <c>AQMP_FUZZ_SEED</c> is not set; null for a fresh one.</param>
    public static Random Next(out int seed, int? fixedSeed = null)
    {
        var text = Environment.GetEnvironmentVariable(Variable);
        seed = int.TryParse(text, out var replayed) ? replayed : fixedSeed ?? Random.Shared.Next();
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.FullName}: seed {seed} (replay with {Variable}={seed})");
        return new Random(seed);
    }

    /// <summary>The message to attach to every assertion of a randomized test.</summary>
    public static string Replay(int seed) => $"seed {seed}: replay with {Variable}={seed}";
}
