using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Aqmp.Pipelines.Benchmarks.Server;

/// <summary>
/// A <see cref="MeterListener"/> that does what <c>dotnet-counters monitor --counters NAME</c> asks
/// of the process: every instrument of the meters named <c>NAME</c> enabled, each measurement
/// aggregated (a sum per counter and tag set, a count, sum and power-of-two bucket per histogram
/// value under a lock), and the observable instruments polled once per second.
/// </summary>
internal sealed class CountersListener : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Timer _poll;
    private readonly ConcurrentBag<Aggregate> _aggregates = [];

    /// <summary>Starts listening to every instrument of the meters named <paramref name="meterName"/>.</summary>
    public CountersListener(string meterName)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == meterName)
            {
                var aggregate = new Aggregate(instrument);
                _aggregates.Add(aggregate);
                listener.EnableMeasurementEvents(instrument, aggregate);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((Aggregate)state!).Add(value, tags));
        _listener.SetMeasurementEventCallback<int>((_, value, tags, state) => ((Aggregate)state!).Add(value, tags));
        _listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((Aggregate)state!).Add(value, tags));
        _listener.Start();
        _poll = new Timer(_ => _listener.RecordObservableInstruments(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Measurements recorded so far, over all instruments.</summary>
    public long Measurements => _aggregates.Sum(aggregate => aggregate.Count);

    /// <summary>Measurements recorded so far per instrument name (those with any).</summary>
    public IEnumerable<(string Instrument, long Count)> PerInstrument
        => _aggregates.Where(aggregate => aggregate.Count > 0).Select(aggregate => (aggregate.Name, aggregate.Count)).OrderBy(pair => pair.Name, StringComparer.Ordinal);

    /// <summary>Stops polling and listening.</summary>
    public void Dispose()
    {
        _poll.Dispose();
        _listener.Dispose();
    }

    /// <summary>One instrument's aggregation: per tag set, as dotnet-counters keeps it.</summary>
    private sealed class Aggregate(Instrument instrument)
    {
        private readonly bool _histogram = instrument.GetType().Name.StartsWith("Histogram", StringComparison.Ordinal);
        private readonly ConcurrentDictionary<string, Series> _tagged = new(StringComparer.Ordinal);
        private readonly Series _untagged = new();
        private long _count;

        public string Name => instrument.Name;

        public long Count => Volatile.Read(ref _count);

        public void Add(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            Interlocked.Increment(ref _count);
            var series = tags.IsEmpty ? _untagged : _tagged.GetOrAdd(Key(tags), static _ => new Series());
            if (_histogram)
            {
                series.Record(value);
            }
            else
            {
                series.Sum(value);
            }
        }

        private static string Key(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var parts = new string[tags.Length];
            for (var i = 0; i < tags.Length; i++)
            {
                parts[i] = tags[i].Key + "=" + tags[i].Value;
            }

            Array.Sort(parts, StringComparer.Ordinal);
            return string.Join(',', parts);
        }
    }

    /// <summary>A counter's running sum, or a histogram's count, sum and power-of-two buckets.</summary>
    private sealed class Series
    {
        private readonly Lock _gate = new();
        private readonly long[] _buckets = new long[128];
        private double _sum;
        private long _count;

        public void Sum(double value)
        {
            lock (_gate)
            {
                _sum += value;
            }
        }

        public void Record(double value)
        {
            lock (_gate)
            {
                _count++;
                _sum += value;
                _buckets[value > 0 ? Math.Clamp(Math.ILogB(value) + 64, 0, _buckets.Length - 1) : 0]++;
            }
        }
    }
}
