using System.Diagnostics;

namespace Aqmp.Pipelines.Server;

/// <summary>
/// A token bucket shared by a server's accept loops: it holds at most one second's worth of
/// accepts (at least one) and refills continuously at the rate.
/// </summary>
internal sealed class AcceptRateLimiter(double perSecond)
{
    private readonly double _capacity = Math.Max(1, perSecond);
    private readonly Lock _gate = new();
    private double _tokens = Math.Max(1, perSecond);
    private long _refilledAt = Stopwatch.GetTimestamp();

    /// <summary>Takes one token, waiting as long as the bucket is empty.</summary>
    /// <param name="cancellationToken">Stops the wait.</param>
    /// <returns>A task that completes when the token is taken.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public async ValueTask TakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            TimeSpan wait;
            lock (_gate)
            {
                var now = Stopwatch.GetTimestamp();
                _tokens = Math.Min(_capacity, _tokens + (Stopwatch.GetElapsedTime(_refilledAt, now).TotalSeconds * perSecond));
                _refilledAt = now;
                if (_tokens >= 1)
                {
                    _tokens -= 1;
                    return;
                }

                wait = TimeSpan.FromSeconds((1 - _tokens) / perSecond);
            }

            await Task.Delay(wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait, cancellationToken).ConfigureAwait(false);
        }
    }
}
