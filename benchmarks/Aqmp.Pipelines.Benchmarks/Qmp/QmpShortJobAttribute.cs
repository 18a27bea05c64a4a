using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;

namespace Aqmp.Pipelines.Benchmarks.Qmp;

/// <summary>
/// A short job for a small (2-core) machine: 1 launch, 3 warmup and 8 measured iterations. It is
/// marked as the class's default job, so a job given on the command line (<c>--job Dry</c>,
/// <c>--job Short</c>) replaces it instead of running next to it.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class QmpShortJobAttribute : Attribute, IConfigSource
{
    /// <summary>Creates the job.</summary>
    public QmpShortJobAttribute()
        => Config = ManualConfig.CreateEmpty().AddJob(
            Job.Default.WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(8).WithId("QmpShort").AsDefault());

    /// <inheritdoc />
    public IConfig Config { get; }
}
