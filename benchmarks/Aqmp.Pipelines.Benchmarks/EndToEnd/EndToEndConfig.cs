using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>
/// The configuration of the end-to-end benchmarks: a short job for a small (2-core) machine, the
/// memory diagnoser, and rate columns.
/// </summary>
/// <remarks>
/// The job is a custom <em>default</em> job (<see cref="JobExtensions.AsDefault"/>): it is used
/// only when the command line names no job, so <c>--job Dry</c> runs the dry job alone instead of
/// adding it to this one.
/// </remarks>
public class EndToEndConfig : ManualConfig
{
    /// <summary>Creates the configuration.</summary>
    public EndToEndConfig()
    {
        AddJob(Job.Default
            .WithLaunchCount(1)
            .WithWarmupCount(2)
            .WithIterationCount(6)
            .WithId("EndToEnd")
            .AsDefault());
        AddDiagnoser(MemoryDiagnoser.Default);
        SummaryStyle = SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend);
    }
}

/// <summary>
/// A rate derived from the mean time of an operation: units per operation divided by the mean,
/// e.g. MiB/s for a stream of a known size, or round trips per second.
/// </summary>
internal sealed class RateColumn(string name, string legend, Func<BenchmarkCase, double> unitsPerOperation, string format = "N1") : IColumn
{
    public string Id => nameof(RateColumn) + "." + name;

    public string ColumnName => name;

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => legend;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var mean = summary[benchmarkCase]?.ResultStatistics?.Mean;
        if (mean is not > 0)
        {
            return "NA";
        }

        var perSecond = unitsPerOperation(benchmarkCase) * 1e9 / mean.Value;
        return perSecond.ToString(format, CultureInfo.InvariantCulture);
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public override string ToString() => ColumnName;
}

/// <summary>Allocated bytes per operation divided by the messages one operation carries.</summary>
internal sealed class AllocatedPerMessageColumn(Func<BenchmarkCase, double> messagesPerOperation) : IColumn
{
    public string Id => nameof(AllocatedPerMessageColumn);

    public string ColumnName => "Alloc/msg";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 1;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Bytes allocated (all threads of the process) per message moved";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report is null || report.GcStats.GetBytesAllocatedPerOperation(benchmarkCase) is not { } bytes)
        {
            return "NA";
        }

        return (bytes / messagesPerOperation(benchmarkCase)).ToString("N2", CultureInfo.InvariantCulture) + " B";
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public override string ToString() => ColumnName;
}
