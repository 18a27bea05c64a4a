namespace Aqmp.Pipelines.Cli.Tests.Support;

/// <summary>Assertions on what the tool printed.</summary>
internal static class ToolAssert
{
    /// <summary>The subcommands, whose wrong command lines point at their own help.</summary>
    public static readonly string[] Subcommands = ["shell", "execute", "events", "serve", "completion", "help"];

    /// <summary>
    /// The hint line after a command-line error: "Try 'aqmp SUBCOMMAND --help'." after a
    /// subcommand's error, "Try 'aqmp --help'." when the subcommand itself is wrong or missing.
    /// </summary>
    public static string HintFor(IReadOnlyList<string> arguments) =>
        arguments.Count > 0 && Subcommands.Contains(arguments[0]) ? $"Try 'aqmp {arguments[0]} --help'." : "Try 'aqmp --help'.";

    /// <summary>A failure is reported in words: no stack trace, no unhandled-exception banner.</summary>
    public static void NoStackTrace(AqmpResult result)
    {
        Assert.That(result.StderrLines.Where(line => line.StartsWith("   at ", StringComparison.Ordinal)), Is.Empty, $"stack trace on stderr: {result}");
        Assert.That(result.Stderr, Does.Not.Contain("Unhandled exception"), $"unhandled exception: {result}");
        Assert.That(result.Stdout, Does.Not.Contain("Unhandled exception"), $"unhandled exception: {result}");
    }

    /// <summary>Exit 64, stdout empty, stderr "aqmp: ..." (containing <paramref name="fragment"/>) and the hint line.</summary>
    public static void UsageError(AqmpResult result, string fragment)
    {
        NoStackTrace(result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCode.Usage), result.ToString());
            Assert.That(result.StderrLines, Has.Count.EqualTo(2), result.ToString());
            Assert.That(result.StderrLines.FirstOrDefault(), Does.StartWith("aqmp: ").And.Contain(fragment), result.ToString());
            Assert.That(result.StderrLines.ElementAtOrDefault(1), Is.EqualTo(HintFor(result.Arguments)), result.ToString());
            Assert.That(result.Stdout, Is.Empty, result.ToString());
        }
    }

    /// <summary>Exit <paramref name="exitCode"/>, nothing on stdout, and exactly <paramref name="stderrLine"/> on stderr.</summary>
    public static void FailsWith(AqmpResult result, int exitCode, string stderrLine)
    {
        NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(exitCode), result.ToString());
        Assert.That(result.StderrLines, Is.EqualTo(new[] { stderrLine }), result.ToString());
        Assert.That(result.Stdout, Is.Empty, result.ToString());
    }

    /// <summary>The shell's end when its server went away: exit 2 and exactly one stderr line "aqmp: connection lost: ...".</summary>
    public static void ConnectionLost(AqmpResult result)
    {
        NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.ConnectionFailed), result.ToString());
        Assert.That(result.StderrLines, Has.Count.EqualTo(1).And.All.StartWith("aqmp: connection lost: "), result.ToString());
    }

    /// <summary>Exit 2, stdout empty, exactly one stderr line "aqmp: error: ..." containing <paramref name="fragment"/>.</summary>
    public static void ConnectionFailure(AqmpResult result, string fragment)
    {
        NoStackTrace(result);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(result.ExitCode, Is.EqualTo(ExitCode.ConnectionFailed), result.ToString());
            Assert.That(result.StderrLines, Has.Count.EqualTo(1), result.ToString());
            Assert.That(result.StderrLines.FirstOrDefault(), Does.StartWith("aqmp: error: ").And.Contain(fragment), result.ToString());
            Assert.That(result.Stdout, Is.Empty, result.ToString());
        }
    }

    /// <summary>Exit 0 and nothing on stderr.</summary>
    public static void Success(AqmpResult result)
    {
        NoStackTrace(result);
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        Assert.That(result.Stderr, Is.Empty, result.ToString());
    }
}

/// <summary>The tool's exit codes, as its help and README document them.</summary>
internal static class ExitCode
{
    public const int Success = 0;
    public const int QmpError = 1;
    public const int ConnectionFailed = 2;
    public const int ConnectTimedOut = 3;
    public const int TimedOut = 4;
    public const int Interrupted = 130;
    public const int Usage = 64;
}
