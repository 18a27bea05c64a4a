using System.Diagnostics;
using Aqmp.Pipelines.Transports;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Transports;

/// <summary>
/// <see cref="AsyncAutoResetSignal"/>, a send loop's wake-up call: a set is remembered until the
/// next wait, several sets before a wait count as one, the waiter resumes on the thread pool (never
/// inside <see cref="AsyncAutoResetSignal.Set"/>), and no wake-up is ever lost to a race.
/// </summary>
public class AsyncAutoResetSignalTests
{
    [ThreadStatic]
    private static bool t_insideSet;

    [Test]
    public void A_set_before_the_wait_makes_the_wait_complete_at_once()
    {
        var signal = new AsyncAutoResetSignal();
        signal.Set();

        var wait = signal.WaitAsync();

        Assert.That(wait.IsCompletedSuccessfully, Is.True);
    }

    [Test]
    public void A_wait_without_a_set_pends()
    {
        var signal = new AsyncAutoResetSignal();

        var wait = signal.WaitAsync();

        Assert.That(wait.IsCompleted, Is.False);
        signal.Set();
    }

    [Test]
    public async Task Several_sets_before_a_wait_count_as_one_so_the_next_wait_pends_until_the_next_set()
    {
        var signal = new AsyncAutoResetSignal();
        signal.Set();
        signal.Set();
        signal.Set();

        Assert.That(signal.WaitAsync().IsCompletedSuccessfully, Is.True, "the first wait consumes the sets");
        var second = signal.WaitAsync().AsTask();
        await Task.Delay(20);
        Assert.That(second.IsCompleted, Is.False, "the sets counted as one");

        signal.Set();
        await second.Bounded();
    }

    [Test]
    public async Task A_set_after_the_wait_resumes_the_waiter_on_another_thread_not_inline_in_Set()
    {
        var signal = new AsyncAutoResetSignal();
        var wait = signal.WaitAsync();
        Assert.That(wait.IsCompleted, Is.False);
        var observed = ObserveAsync(wait);

        var setter = new Thread(() =>
        {
            t_insideSet = true;
            try
            {
                signal.Set();
            }
            finally
            {
                t_insideSet = false;
            }
        });
        setter.Start();
        Assert.That(setter.Join(TestTimeouts.Default), Is.True, "Set returns without waiting for the waiter");

        var (ranInsideSet, threadId) = await observed.Bounded();
        Assert.That(ranInsideSet, Is.False, "the continuation did not run inside Set");
        Assert.That(threadId, Is.Not.EqualTo(setter.ManagedThreadId));

        static async Task<(bool, int)> ObserveAsync(ValueTask wait)
        {
            await wait.ConfigureAwait(false);
            return (t_insideSet, Environment.CurrentManagedThreadId);
        }
    }

    [Test]
    public async Task The_signal_can_be_waited_on_again_and_again_after_each_set()
    {
        var signal = new AsyncAutoResetSignal();
        for (var i = 0; i < 100; i++)
        {
            var wait = signal.WaitAsync().AsTask();
            signal.Set();
            await wait.Bounded();
        }

        Assert.That(signal.WaitAsync().IsCompleted, Is.False, "no set left over");
        signal.Set();
    }

    [Test]
    public async Task A_setter_thread_racing_a_waiter_loop_one_hundred_thousand_times_never_loses_a_wake_up_nor_wakes_it_spuriously()
    {
        // Ping-pong: the setter sets round i and spins until the waiter acknowledges it; the waiter
        // re-arms right after acknowledging, racing the setter's next Set. A lost wake-up hangs the
        // round (the bound fails the test); a spurious one wakes the waiter before its round was set.
        const int Rounds = 100_000;
        var signal = new AsyncAutoResetSignal();
        var sent = 0;
        var acknowledged = 0;
        var spurious = 0;
        using var stop = new CancellationTokenSource(TestTimeouts.Default);

        var waiter = Task.Run(async () =>
        {
            for (var round = 1; round <= Rounds; round++)
            {
                await signal.WaitAsync().ConfigureAwait(false);
                if (Volatile.Read(ref sent) != round)
                {
                    Interlocked.Increment(ref spurious);
                }

                Volatile.Write(ref acknowledged, round);
            }
        });

        var lostAt = 0;
        var setter = new Thread(() =>
        {
            var watch = Stopwatch.StartNew();
            for (var round = 1; round <= Rounds; round++)
            {
                Volatile.Write(ref sent, round);
                signal.Set();
                var spin = new SpinWait();
                while (Volatile.Read(ref acknowledged) < round)
                {
                    if (stop.IsCancellationRequested)
                    {
                        lostAt = round;
                        return;
                    }

                    spin.SpinOnce(sleep1Threshold: -1);
                }
            }

            TestContext.Progress.WriteLine($"AsyncAutoResetSignal ping-pong: {Rounds} rounds in {watch.ElapsedMilliseconds} ms");
        });
        setter.Start();

        Assert.That(setter.Join(TestTimeouts.Default + TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(lostAt, Is.Zero, $"the wake-up of round {lostAt} was lost");
        await waiter.Bounded();
        Assert.That(spurious, Is.Zero, "the waiter never woke before its round was set");
        Assert.That(signal.WaitAsync().IsCompleted, Is.False, "no set left over");
        signal.Set();
    }
}
