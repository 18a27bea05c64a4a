namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// The seed of a randomized test: <c>AQMP_FUZZ_SEED</c> when set (to replay a failure), else a
/// fresh one. The seed is printed before the test runs, so a failure always says how to replay it.
/// </summary>
internal static class FuzzSeed
{
    /// <summary>The environment variable that replays a seed.</summary>
    public const string Variable = "AQMP_FUZZ_SEED";

    /// <summary>Picks the seed, prints it with the replay command, and returns a generator seeded with it.</summary>
    public static Random Next(out int seed)
    {
        var text = Environment.GetEnvironmentVariable(Variable);
        seed = int.TryParse(text, out var fixedSeed) ? fixedSeed : Random.Shared.Next();
        TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.FullName}: seed {seed} (replay with {Variable}={seed})");
        return new Random(seed);
    }

    /// <summary>The message to attach to every assertion of a randomized test.</summary>
    public static string Replay(int seed) => $"seed {seed}: replay with {Variable}={seed}";
}
