namespace Aqmp.Pipelines.Session;

/// <summary>
/// Describes one runstate transition of a <see cref="PipeProtocol{TMessage}"/>.
/// </summary>
/// <param name="previous">The runstate before the transition.</param>
/// <param name="current">The runstate after the transition.</param>
public sealed class RunstateChangedEventArgs(Runstate previous, Runstate current) : EventArgs
{
    /// <summary>The runstate before the transition.</summary>
    public Runstate Previous { get; } = previous;

    /// <summary>The runstate after the transition.</summary>
    public Runstate Current { get; } = current;

    /// <inheritdoc />
    public override string ToString() => $"{Previous} -> {Current}";
}
