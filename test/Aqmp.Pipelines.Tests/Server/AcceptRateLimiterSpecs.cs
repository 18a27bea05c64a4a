using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>The accept-rate token bucket: a second's worth of accepts at once, then one per interval; a wait can be cancelled.</summary>
public class AcceptRateLimiterSpecs
{
    [Test]
    public async Task A_full_bucket_gives_a_seconds_worth_at_once_and_the_next_take_waits_for_a_refill()
    {
        var limiter = new AcceptRateLimiter(5);
        for (var i = 0; i < 5; i++)
        {
            Assert.That(limiter.TakeAsync(CancellationToken.None).IsCompleted, Is.True, $"take {i + 1} of 5");
        }

        var sixth = limiter.TakeAsync(CancellationToken.None).AsTask();

        Assert.That(sixth.IsCompleted, Is.False, "the bucket is empty");
        await sixth.Bounded();
    }

    [Test]
    public async Task A_wait_for_a_token_is_cancelled_by_its_token()
    {
        var limiter = new AcceptRateLimiter(0.1);
        await limiter.TakeAsync(CancellationToken.None).Bounded();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        Assert.That(async () => await limiter.TakeAsync(cancel.Token), Throws.InstanceOf<OperationCanceledException>());
    }
}
