using System.CommandLine;
using System.Globalization;
using Aqmp.Pipelines.Cli.CommandLine;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Cli;

/// <summary>
/// The time limits the client subcommands share: <c>--connect-timeout SECONDS</c> bounds both the
/// transport's connection and the wait for the QMP greeting (<see cref="QmpClientOptions.ConnectTimeout"/>,
/// <see cref="QmpClientOptions.GreetingTimeout"/>; 5 s each by default), and <c>--timeout SECONDS</c>
/// is each subcommand's own limit on what follows.
/// </summary>
internal static class ClientTimeouts
{
    /// <summary>A new <c>--connect-timeout SECONDS</c> option, for one subcommand.</summary>
    public static Option<TimeSpan?> CreateConnectOption() =>
        ValueOptions.Seconds("--connect-timeout", "limit on connecting and on the QMP greeting (default 5; exit 3)");

    /// <summary><paramref name="options"/> with <paramref name="connectTimeout"/>, when given, as its connect and greeting timeouts.</summary>
    public static QmpClientOptions Apply(TimeSpan? connectTimeout, QmpClientOptions options) =>
        connectTimeout is { } limit ? options with { ConnectTimeout = limit, GreetingTimeout = limit } : options;

    /// <summary>Whether <paramref name="error"/> is the connect or greeting timeout running out.</summary>
    public static bool IsConnectTimeout(Exception error) =>
        error is QmpNegotiationException { InnerException: TimeoutException } or ConnectException { InnerException: TimeoutException };

    /// <summary>A duration as people read it: <c>5 s</c>, <c>0.5 s</c>.</summary>
    public static string Describe(TimeSpan limit) => limit.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s";
}
