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
        var grouped = CliArguments.Parse(["-pvH", "-lqmp.log", "sock"], ShellOptions.ValueOptions, ShellOptions.Flags, ShellOptions.ShortNames);
        var apart = ShellOptions.From(CliArguments.Parse(["-N", "-l", "qmp.log", "--pretty", "sock"], ShellOptions.ValueOptions, ShellOptions.Flags, ShellOptions.ShortNames), socketVariable: null, "usage");

        using (Assert.EnterMultipleScope())
        {
            Assert.That(ShellOptions.From(grouped, null, "usage"), Is.EqualTo(new ShellOptions { Pretty = true, Verbose = true, Hmp = true, LogFile = "qmp.log", Address = "unix:sock" }));
            Assert.That(apart, Is.EqualTo(new ShellOptions { SkipNegotiation = true, Pretty = true, LogFile = "qmp.log", Address = "unix:sock" }));
            Assert.That(() => CliArguments.Parse(["-x"], ShellOptions.ValueOptions, ShellOptions.Flags, ShellOptions.ShortNames), Throws.TypeOf<UsageException>().With.Message.EqualTo("unknown option '-x'"));
            Assert.That(() => CliArguments.Parse(["-l"], ShellOptions.ValueOptions, ShellOptions.Flags, ShellOptions.ShortNames), Throws.TypeOf<UsageException>().With.Message.EqualTo("option '-l' needs a value"));
        }
    }

    [Test]
    public void An_address_given_wins_over_QMP_SOCKET_which_wins_over_the_built_in_simulator()
    {
        CliArguments Args(params string[] args) => CliArguments.Parse(args, ShellOptions.ValueOptions, ShellOptions.Flags, ShellOptions.ShortNames);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(ShellOptions.From(Args("a.sock"), "b.sock", "usage").Address, Is.EqualTo("unix:a.sock"));
            Assert.That(ShellOptions.From(Args(), "b.sock", "usage").Address, Is.EqualTo("unix:b.sock"));
            Assert.That(ShellOptions.From(Args(), "", "usage").Address, Is.Null);
        }
    }
}
