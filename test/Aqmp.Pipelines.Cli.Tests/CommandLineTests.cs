using System.Reflection;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary>The command line itself: help, usage, and wrong command lines (no server needed).</summary>
[TestFixture]
public sealed class CommandLineTests
{
    private static readonly string[] SubcommandUsages =
    [
        "aqmp shell [-p] [-H] [-v] [-N] [-l FILE] [ADDRESS]",
        "aqmp execute ADDRESS COMMAND [JSON-ARGUMENTS]",
        "aqmp events ADDRESS [--name NAME]... [--count N]",
        "aqmp serve ADDRESS",
    ];

    private static IEnumerable<TestCaseData> WrongCommandLines()
    {
        static TestCaseData Case(string fragment, params string[] args) => new TestCaseData(args, fragment).SetArgDisplayNames(string.Join(' ', args));

        yield return Case("unknown command 'bogus'", "bogus");
        yield return Case("unknown command 'exectue'; did you mean 'execute'?", "exectue");
        yield return Case("unknown option '--tiemout'; did you mean '--timeout'?", "execute", "--tiemout", "1", "unix:/tmp/x.sock", "query-status");
        yield return Case("unknown option '--version'", "execute", "unix:/tmp/x.sock", "query-status", "--version");
        yield return Case("unknown command 'bogus'", "help", "bogus");
        yield return Case("unknown command 'exectue'; did you mean 'execute'?", "help", "exectue");
        yield return Case("SHELL must be bash, zsh or fish, not 'ksh'", "completion", "ksh");
        yield return Case("usage: aqmp completion bash|zsh|fish", "completion");
        yield return Case("unknown option '--bogus'", "execute", "--bogus");
        yield return Case("unknown option '--bogus'", "events", "unix:/tmp/x.sock", "--bogus=1");
        yield return Case("unknown option '--name'", "shell", "--name", "STOP");
        yield return Case("unknown option '--count'", "execute", "unix:/tmp/x.sock", "query-status", "--count", "1");
        yield return Case("usage: aqmp execute [--timeout SECONDS] [--connect-timeout SECONDS] ADDRESS COMMAND [JSON-ARGUMENTS]", "execute");
        yield return Case("usage: aqmp execute [--timeout SECONDS] [--connect-timeout SECONDS] ADDRESS COMMAND [JSON-ARGUMENTS]", "execute", "unix:/tmp/x.sock");
        yield return Case("usage: aqmp execute [--timeout SECONDS] [--connect-timeout SECONDS] ADDRESS COMMAND [JSON-ARGUMENTS]", "execute", "unix:/tmp/x.sock", "stop", "{}", "extra");
        yield return Case("usage: aqmp events ADDRESS", "events");
        yield return Case("'--count' needs a positive whole number, not '0'", "events", "unix:/tmp/x.sock", "--count", "0");
        yield return Case("'--count' needs a positive whole number, not 'many'", "events", "unix:/tmp/x.sock", "--count", "many");
        yield return Case("option '--name' needs a value", "events", "unix:/tmp/x.sock", "--name");
        yield return Case("usage: aqmp serve [--negotiation-timeout SECONDS] [--max-clients N] ADDRESS", "serve");
        yield return Case("usage: aqmp serve [--negotiation-timeout SECONDS] [--max-clients N] ADDRESS", "serve", "unix:/tmp/a.sock", "unix:/tmp/b.sock");
        yield return Case("usage: aqmp shell [-p] [-H] [-v] [-N] [-l FILE] [--history-file FILE] [ADDRESS]", "shell", "unix:/tmp/a.sock", "unix:/tmp/b.sock");
    }

    [TestCase("--help")]
    [TestCase("-h")]
    [TestCase("help")]
    public async Task Help_prints_the_usage_of_every_subcommand_and_exits_0(string help)
    {
        var result = await AqmpProcess.RunAsync(help);

        ToolAssert.Success(result);
        Assert.That(result.Stdout, Does.StartWith("aqmp: "));
        foreach (var usage in SubcommandUsages)
        {
            Assert.That(result.Stdout, Does.Contain(usage), result.ToString());
        }
    }

    [TestCase("shell", "usage: aqmp shell [-p] [-H] [-v] [-N] [-l FILE] [--history-file FILE] [ADDRESS]", "built-in QMP simulator")]
    [TestCase("execute", "usage: aqmp execute [--timeout SECONDS] [--connect-timeout SECONDS] ADDRESS COMMAND [JSON-ARGUMENTS]", "exits 1")]
    [TestCase("events", "usage: aqmp events ADDRESS [--name NAME]... [--count N] [--timeout SECONDS] [--connect-timeout SECONDS]", "--count")]
    [TestCase("serve", "usage: aqmp serve [--negotiation-timeout SECONDS] [--max-clients N] ADDRESS", "quit")]
    public async Task Subcommand_help_prints_its_usage_and_exits_0(string subcommand, string usage, string detail)
    {
        foreach (var help in (string[])["--help", "-h"])
        {
            var result = await AqmpProcess.RunAsync(subcommand, help);

            ToolAssert.Success(result);
            Assert.That(result.StdoutLines.FirstOrDefault(), Is.EqualTo(usage), result.ToString());
            Assert.That(result.Stdout, Does.Contain(detail), result.ToString());
        }
    }

    [Test]
    public async Task Help_lists_every_exit_code_and_the_options_of_aqmp_itself()
    {
        var result = await AqmpProcess.RunAsync("--help");

        ToolAssert.Success(result);
        foreach (var code in (int[])[ExitCode.Success, ExitCode.QmpError, ExitCode.ConnectionFailed, ExitCode.ConnectTimedOut, ExitCode.TimedOut, ExitCode.Usage, ExitCode.Interrupted])
        {
            Assert.That(result.StdoutLines, Has.Some.Match($"^  {code} +\\S"), $"exit code {code}: {result}");
        }

        Assert.That(result.StdoutLines, Has.Some.Match("^  --version +").And.Some.Match("^  -h, --help +"), result.ToString());
    }

    [TestCase("shell", "-p, --pretty", "-l, --logfile FILE", "--history-file FILE", "--connect-timeout SECONDS")]
    [TestCase("execute", "--timeout SECONDS", "--connect-timeout SECONDS")]
    [TestCase("events", "--name NAME", "--count N", "--timeout SECONDS")]
    [TestCase("serve", "--negotiation-timeout SECONDS")]
    public async Task Subcommand_help_lists_each_of_its_options_with_a_description(string subcommand, params string[] options)
    {
        var result = await AqmpProcess.RunAsync(subcommand, "--help");

        ToolAssert.Success(result);
        foreach (var option in options.Append("-h, --help"))
        {
            Assert.That(result.StdoutLines, Has.Some.Match($"^  {System.Text.RegularExpressions.Regex.Escape(option)} +\\S"), $"{option}: {result}");
        }
    }

    [TestCase("execute")]
    [TestCase("shell")]
    [TestCase("events")]
    [TestCase("serve")]
    [TestCase("completion")]
    public async Task Help_COMMAND_prints_what_COMMAND_help_prints(string subcommand)
    {
        var viaHelp = await AqmpProcess.RunAsync("help", subcommand);
        var viaOption = await AqmpProcess.RunAsync(subcommand, "--help");

        ToolAssert.Success(viaHelp);
        Assert.That(viaHelp.StdoutLines.FirstOrDefault(), Does.StartWith($"usage: aqmp {subcommand}"), viaHelp.ToString());
        Assert.That(viaHelp.Stdout, Is.EqualTo(viaOption.Stdout));
    }

    [Test]
    public async Task Version_prints_the_tool_assembly_version_and_exits_0()
    {
        var expected = typeof(AqmpTool).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;

        var result = await AqmpProcess.RunAsync("--version");

        ToolAssert.Success(result);
        Assert.That(result.StdoutLines, Is.EqualTo(new[] { expected }), result.ToString());
        Assert.That(expected, Does.StartWith(typeof(AqmpTool).Assembly.GetName().Version!.ToString(3)));
    }

    [Test]
    public async Task Help_wins_over_the_other_arguments_and_connects_to_nothing()
    {
        var missing = SimulatorFixture.TempSocketPath("missing");

        var result = await AqmpProcess.RunAsync("execute", missing, "query-status", "--help");

        ToolAssert.Success(result);
        Assert.That(result.StdoutLines.FirstOrDefault(), Is.EqualTo("usage: aqmp execute [--timeout SECONDS] [--connect-timeout SECONDS] ADDRESS COMMAND [JSON-ARGUMENTS]"), result.ToString());
    }

    [Test]
    public async Task No_arguments_print_the_usage_and_exit_64()
    {
        var result = await AqmpProcess.RunAsync();

        ToolAssert.NoStackTrace(result);
        Assert.That(result.ExitCode, Is.EqualTo(ExitCode.Usage), result.ToString());
        foreach (var usage in SubcommandUsages)
        {
            Assert.That(result.Stdout + result.Stderr, Does.Contain(usage), result.ToString());
        }
    }

    [TestCaseSource(nameof(WrongCommandLines))]
    public async Task A_wrong_command_line_prints_one_line_and_the_hint_and_exits_64(string[] args, string fragment)
    {
        var result = await AqmpProcess.RunAsync(args);

        ToolAssert.UsageError(result, fragment);
    }

    [TestCase("serve", "-v")]
    [TestCase("shell", "-q")]
    public async Task An_unknown_short_option_is_a_usage_error_not_an_address(string subcommand, string option)
    {
        var result = await AqmpProcess.RunAsync(subcommand, option);

        ToolAssert.UsageError(result, $"'{option}'");
    }

    [Test]
    public async Task A_malformed_address_fails_with_one_line_naming_it()
    {
        var result = await AqmpProcess.RunAsync("execute", "no-such-address", "query-status");

        ToolAssert.NoStackTrace(result);
        using (Assert.EnterMultipleScope())
        {
            // A malformed ADDRESS is reported like a connection failure (2); a usage error (64) would do too.
            Assert.That(result.ExitCode, Is.AnyOf(ExitCode.ConnectionFailed, ExitCode.Usage), result.ToString());
            Assert.That(result.StderrLines.FirstOrDefault(), Does.StartWith("aqmp: ").And.Contain("'no-such-address'"), result.ToString());
            Assert.That(result.StderrLines.Where(line => line != ToolAssert.HintFor(result.Arguments)), Has.Exactly(1).Items, result.ToString());
            Assert.That(result.Stdout, Is.Empty, result.ToString());
        }
    }
}
