namespace Aqmp.Pipelines.Cli;

/// <summary>The tool's process exit codes.</summary>
internal static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Success = 0;

    /// <summary>The server answered with a QMP error.</summary>
    public const int QmpError = 1;

    /// <summary>The connection failed or was lost, or <c>serve</c> could not listen or stopped accepting clients.</summary>
    public const int ConnectionFailed = 2;

    /// <summary>No connection, or no QMP greeting, within the connect timeout (<c>--connect-timeout</c>, 5 s by default): another client may hold the monitor.</summary>
    public const int ConnectTimedOut = 3;

    /// <summary><c>--timeout</c> elapsed: <c>execute</c> got no reply, or <c>events</c> had not finished (its count not reached, the server still connected).</summary>
    public const int TimedOut = 4;

    /// <summary>The command line is wrong.</summary>
    public const int Usage = 64;

    /// <summary>A command that had not finished was interrupted (SIGINT, SIGTERM, SIGHUP or SIGQUIT), as shells report 128 + SIGINT.</summary>
    public const int Interrupted = 130;
}
