namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>Raised when the server answers a command with an error reply.</summary>
public class QmpExecuteException : ProtocolException
{
    /// <summary>Creates the error.</summary>
    /// <param name="command">The command that failed.</param>
    /// <param name="errorClass">The error's <c>class</c>, e.g. <c>CommandNotFound</c>.</param>
    /// <param name="description">The error's <c>desc</c>.</param>
    public QmpExecuteException(string command, string errorClass, string description)
        : base($"{command}: {errorClass}: {description}")
    {
        Command = command;
        ErrorClass = errorClass;
        Description = description;
    }

    /// <summary>The command that failed.</summary>
    public string Command { get; }

    /// <summary>The error's <c>class</c>, e.g. <c>CommandNotFound</c> or <c>GenericError</c>.</summary>
    public string ErrorClass { get; }

    /// <summary>The error's human-readable <c>desc</c>.</summary>
    public string Description { get; }
}
