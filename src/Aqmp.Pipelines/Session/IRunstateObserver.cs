namespace Aqmp.Pipelines.Session;

/// <summary>
/// Told of a session's runstate transitions, as <see cref="PipeProtocol{TMessage}.RunstateChanged"/>
/// handlers are, without a delegate: the hook a server keeps on each of its sessions. A session
/// without one pays a null check per transition.
/// </summary>
internal interface IRunstateObserver
{
    /// <summary>
    /// The session entered <paramref name="current"/>. Called synchronously on the thread making
    /// the transition, under the session's lock: must be quick, must only start work, and must not throw.
    /// </summary>
    /// <param name="current">The runstate entered.</param>
    void RunstateEntered(Runstate current);
}
