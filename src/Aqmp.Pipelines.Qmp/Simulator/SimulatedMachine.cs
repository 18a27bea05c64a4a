namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The run state of the simulated machine, as QEMU 7.2 moves it: <c>running</c> at start,
/// <c>paused</c> after <c>stop</c>, <c>prelaunch</c> after a reset while not running, and
/// <c>running</c> again after <c>cont</c>. Safe to use from several threads.
/// </summary>
internal sealed class SimulatedMachine
{
    private const int Running = 0;
    private const int Paused = 1;
    private const int Prelaunch = 2;

    private int _state = Running;

    /// <summary>Whether the machine runs.</summary>
    public bool IsRunning => Volatile.Read(ref _state) == Running;

    /// <summary>The run state as <c>query-status</c> names it.</summary>
    public string Status => Volatile.Read(ref _state) switch
    {
        Running => "running",
        Paused => "paused",
        _ => "prelaunch",
    };

    /// <summary>Pauses a running machine (QEMU's <c>stop</c>); any other state stays as it is.</summary>
    /// <returns>True when the machine was running (QEMU emits <c>STOP</c> then).</returns>
    public bool Pause() => Interlocked.CompareExchange(ref _state, Paused, Running) == Running;

    /// <summary>Runs the machine (QEMU's <c>cont</c>).</summary>
    /// <returns>True when it was not running (QEMU emits <c>RESUME</c> then).</returns>
    public bool Resume() => Interlocked.Exchange(ref _state, Running) != Running;

    /// <summary>Resets the machine: a machine that does not run is left in <c>prelaunch</c>.</summary>
    public void Reset() => Interlocked.CompareExchange(ref _state, Prelaunch, Paused);
}
