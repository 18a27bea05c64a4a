namespace Aqmp.Pipelines.Session;

/// <summary>
/// Raised when connecting, accepting or opening a session fails (QEMU aqmp's <c>ConnectError</c>).
/// </summary>
/// <remarks>
/// Always wraps the root cause in <see cref="Exception.InnerException"/>: most often a
/// <see cref="System.Net.Sockets.SocketException"/>, an <see cref="IOException"/>, an
/// <see cref="System.Security.Authentication.AuthenticationException"/> (TLS) or an
/// <see cref="EndOfStreamException"/>; when the handshake of
/// <see cref="PipeProtocol{TMessage}.EstablishSessionAsync"/> fails, whatever it threw.
/// Cancellation is never wrapped: it surfaces as <see cref="OperationCanceledException"/>.
/// </remarks>
public class ConnectException : ProtocolException
{
    /// <summary>The phase message used when the transport could not be connected, accepted or opened.</summary>
    public const string ConnectionPhase = "Failed to establish connection";

    /// <summary>The phase message used when the transport was up but the session handshake failed.</summary>
    public const string SessionPhase = "Failed to establish session";

    /// <summary>Creates a connect error for a phase and its root cause.</summary>
    /// <param name="errorMessage">Which phase failed, e.g. <see cref="ConnectionPhase"/>.</param>
    /// <param name="innerException">The root cause; never null.</param>
    public ConnectException(string errorMessage, Exception innerException)
        : base(Describe(errorMessage, innerException), innerException ?? throw new ArgumentNullException(nameof(innerException)))
    {
        ErrorMessage = errorMessage;
    }

    /// <summary>The phase message without the cause, e.g. "Failed to establish connection".</summary>
    public string ErrorMessage { get; }

    private static string Describe(string errorMessage, Exception? cause)
    {
        if (cause is null)
        {
            return errorMessage;
        }

        var text = cause.Message;
        return string.IsNullOrEmpty(text)
            ? $"{errorMessage}: {cause.GetType().Name}"
            : $"{errorMessage}: {text}";
    }
}
