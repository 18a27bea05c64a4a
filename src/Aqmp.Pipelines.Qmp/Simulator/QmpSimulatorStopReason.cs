namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>Why a <see cref="QmpSimulator"/> stopped serving, as its <see cref="QmpSimulator.Completion"/> reports.</summary>
public enum QmpSimulatorStopReason
{
    /// <summary>A client sent <c>quit</c> and <see cref="QmpSimulatorOptions.StopOnQuit"/> is set.</summary>
    Quit,

    /// <summary><see cref="QmpSimulator.StopAsync"/> or <see cref="QmpSimulator.DisposeAsync"/> was called.</summary>
    Stopped,
}
