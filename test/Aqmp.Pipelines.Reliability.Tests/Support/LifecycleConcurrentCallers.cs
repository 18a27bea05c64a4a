namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// A fixed set of dedicated threads (not thread-pool threads, so that blocking them at the start
/// gate cannot starve the pool the library runs on) that make the same call at the same instant,
/// round after round: each round they all wait at a <see cref="Barrier"/> and are released together.
/// </summary>
internal sealed class LifecycleConcurrentCallers : IDisposable
{
    private static readonly TimeSpan GateBound = TimeSpan.FromSeconds(10);

    private readonly Barrier _gate;
    private readonly Thread[] _threads;
    private readonly Task[] _calls;
    private readonly CancellationTokenSource _stop = new();
    private Func<Task>? _call;

    public LifecycleConcurrentCallers(int count)
    {
        _gate = new Barrier(count + 1);
        _calls = new Task[count];
        _threads = new Thread[count];
        for (var i = 0; i < count; i++)
        {
            var index = i;
            _threads[i] = new Thread(() => Work(index)) { IsBackground = true, Name = $"caller-{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>
    /// Makes every thread call <paramref name="call"/> at once and returns the tasks they got (the
    /// calls are made, not awaited). A synchronous throw is returned as a faulted task.
    /// </summary>
    public Task[] InvokeAll(Func<Task> call)
    {
        _call = call;
        Pass(); // release the callers together
        Pass(); // every caller has made its call
        return [.. _calls];
    }

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var thread in _threads)
        {
            thread.Join(GateBound);
        }

        _gate.Dispose();
        _stop.Dispose();
    }

    private void Pass()
    {
        if (!_gate.SignalAndWait(GateBound, _stop.Token))
        {
            throw new TimeoutException("the callers did not reach the start gate");
        }
    }

    private void Work(int index)
    {
        try
        {
            while (true)
            {
                _gate.SignalAndWait(_stop.Token);
                Task call;
                try
                {
                    call = _call!();
                }
                catch (Exception ex)
                {
                    call = Task.FromException(ex);
                }

                _calls[index] = call;
                _gate.SignalAndWait(_stop.Token);
            }
        }
        catch (OperationCanceledException)
        {
            // Disposed.
        }
    }
}
