using System.CommandLine;
using Aqmp.Pipelines.Cli.CommandLine;
using Aqmp.Pipelines.Cli.Commands;
using Aqmp.Pipelines.Cli.Shell;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary>The shell's addresses and one-letter flags, read as qmp-shell reads them.</summary>
[TestFixture]
public sealed class ShellAddressAndFlagsTests
{
    [TestCase("qmp.sock", "unix:qmp.sock")]
    [TestCase("/run/qemu/qmp.sock", "unix:/run/qemu/qmp.sock")]
    [TestCase("/tmp/odd:4444", "unix:/tmp/odd:4444")]
    [TestCase("unix:/tmp/q.sock", "unix:/tmp/q.sock")]
    [TestCase("localhost:4444", "localhost:4444")]
    [TestCase("[::1]:4444", "[::1]:4444")]
    [TestCase("host:notaport", "unix:host:notaport")]
    public void A_bare_socket_path_is_a_unix_socket_and_host_port_is_TCP(string given, string resolved) =>
        Assert.That(ShellAddress.Resolve(given), Is.EqualTo(resolved));

    [Test]
    public void One_letter_flags_group_and_a_one_letter_value_option_takes_the_rest_of_its_word_or_the_next_argument()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Options(null, "-pvH", "-lqmp.log", "sock"), Is.EqualTo(new ShellOptions { Pretty = true, Verbose = true, Hmp = true, LogFile = "qmp.log", Address = "unix:sock" }));
            Assert.That(Options(null, "-N", "-l", "qmp.log", "--pretty", "sock"), Is.EqualTo(new ShellOptions { SkipNegotiation = true, Pretty = true, LogFile = "qmp.log", Address = "unix:sock" }));
            Assert.That(Options(null, "--connect-timeout", "0.5", "--history-file", "", "sock"), Is.EqualTo(new ShellOptions { ConnectTimeout = TimeSpan.FromMilliseconds(500), HistoryFile = "", Address = "unix:sock" }));
            Assert.That(UsageError.Find(Parse("-x")), Is.EqualTo("unknown option '-x'"));
            Assert.That(UsageError.Find(Parse("-l")), Is.EqualTo("option '-l' needs a value"));
        }
    }

    [Test]
    public void An_address_given_wins_over_QMP_SOCKET_which_wins_over_the_built_in_simulator()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Options("b.sock", "a.sock").Address, Is.EqualTo("unix:a.sock"));
            Assert.That(Options("b.sock").Address, Is.EqualTo("unix:b.sock"));
            Assert.That(Options("").Address, Is.Null);
        }
    }

    /// <summary><c>aqmp shell ARGS</c> as parsed by the tool's command line.</summary>
    internal static ParseResult Parse(params string[] args) => new AqmpCommandLine(ToolConsole.Null).Parse(["shell", .. args]);

    /// <summary>What <c>aqmp shell ARGS</c> asks for, with <paramref name="socketVariable"/> as <c>QMP_SOCKET</c>.</summary>
    internal static ShellOptions Options(string? socketVariable, params string[] args)
    {
        var parsed = Parse(args);
        Assert.That(UsageError.Find(parsed), Is.Null, $"aqmp shell {string.Join(' ', args)}");
        return ((ShellCommand)parsed.CommandResult.Command).ReadOptions(parsed, socketVariable);
    }
}
