namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>Thrown by a simulator command handler to answer with a QMP error reply.</summary>
public class QmpCommandError : Exception
{
    /// <summary>Creates the error.</summary>
    /// <param name="errorClass">The error class, e.g. <c>GenericError</c> or <c>DeviceNotFound</c>.</param>
    /// <param name="description">The human-readable description.</param>
    public QmpCommandError(string errorClass, string description)
        : base($"{errorClass}: {description}")
    {
        ErrorClass = errorClass;
        Description = description;
    }

    /// <summary>The error class.</summary>
    public string ErrorClass { get; }

    /// <summary>The human-readable description.</summary>
    public string Description { get; }

    /// <summary>
    /// The <c>GenericError</c> the simulator answers with for what QEMU 7.2 has but the simulator
    /// does not model: "The command X is not simulated by the Aqmp.Pipelines QMP simulator", or
    /// for <c>human-monitor-command</c> "The human monitor command X is not simulated by …".
    /// </summary>
    /// <param name="what">What is not simulated, e.g. <c>command device_del</c> or <c>human monitor command info block</c>.</param>
    /// <returns>The error.</returns>
    internal static QmpCommandError NotSimulated(string what) => new("GenericError", $"The {what} is not simulated by the Aqmp.Pipelines QMP simulator");
}
