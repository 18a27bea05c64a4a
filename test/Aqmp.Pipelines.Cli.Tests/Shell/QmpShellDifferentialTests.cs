using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Aqmp.Pipelines.Cli.Tests.Support;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>
/// <c>aqmp shell</c> against the real thing it imitates: each spec pipes the same lines through
/// QEMU 7.2's own qmp-shell and through <c>aqmp shell</c>, each against its own fresh QEMU 7.2,
/// and compares what they printed, read by <see cref="ShellTranscript"/> (which names what differs
/// by design). qmp-shell comes from Debian's qemu source package (<c>.ci/get-qmp-shell</c>); the
/// specs are skipped without it, or fail when <c>AQMP_REQUIRE_QEMU=1</c>.
/// </summary>
[TestFixture]
[Category("Qemu")]
public sealed partial class QmpShellDifferentialTests
{
    /// <summary>A machine with one CPU (paused before it starts): qmp-shell's <c>-H</c> sends every line with <c>cpu-index</c> 0.</summary>
    private static readonly string[] MachineWithCpu = ["-M", "microvm", "-S"];

    [Test]
    public async Task Commands_with_numbers_booleans_strings_and_JSON_values_get_the_replies_they_get_through_qmp_shell()
    {
        var (qmpShell, aqmp) = await RunBothAsync([],
            "query-status",
            "query-name",
            "qom-set path=/machine property=graphics value=false",
            "qom-get path=/machine property=graphics",
            "qom-set path=/machine property=dump-guest-core value=False",
            "qom-get path=/machine property=dump-guest-core",
            "qom-set path=/machine property=phandle-start value=+5",
            "qom-get path=/machine property=phandle-start",
            """qom-set path=/machine property=smp value={"cpus":1}""",
            "qom-get path=/machine property=smp",
            "object-add qom-type=secret id=s0 data=abc format=raw",
            "qom-get path=/objects/s0 property=data",
            "object-add qom-type=secret id=s1 data=12",
            "object-add qom-type=throttle-group id=t0 limits={'iops-total':100,'bps-read':2048}",
            "qom-get path=/objects/t0 property=x-iops-total",
            "qom-get path=/objects/t0 property=x-bps-read");

        var entries = AssertSameTranscript(qmpShell, aqmp);
        Assert.That(entries, Has.Count.EqualTo(16), "one reply per line");
        Assert.That(entries, Does.Contain("return false").And.Contain("return 5").And.Contain("return \"abc\"").And.Contain("return 2048"));
        Assert.That(entries, Does.Contain("error GenericError: Invalid parameter type for 'data', expected: string"));
        Assert.That(qmpShell.ExitCode, Is.Zero, "qmp-shell exits 0 whatever failed");
        Assert.That(aqmp.ExitCode, Is.EqualTo(1), "aqmp exits 1 when a piped command failed (README)");
    }

    [Test]
    public async Task Verbose_echoes_the_same_command_built_from_key_value_arguments()
    {
        var (qmpShell, aqmp) = await RunBothAsync(["-v"],
            """x-echo n=1 neg=-5 plus=+7 zeros=007 under=1_000 t=true f=FALSE s=abc hex=0x10 empty= obj={"k":[1,2]} list=[1,"x",true] py={'p':None,'q':True,'r':[1,'two']} deep.a.b=1""",
            "x-echo one.two=2");

        var entries = AssertSameTranscript(qmpShell, aqmp);
        Assert.That(entries, Is.EqualTo(new[]
        {
            """sent {"arguments":{"deep":{"a":{"b":1}},"empty":"","f":false,"hex":"0x10","list":[1,"x",true],"n":1,"neg":-5,"obj":{"k":[1,2]},"plus":7,"py":{"p":null,"q":true,"r":[1,"two"]},"s":"abc","t":true,"under":1000,"zeros":7},"execute":"x-echo"}""",
            "error CommandNotFound: The command x-echo has not been found",
            """sent {"arguments":{"one":{"two":2}},"execute":"x-echo"}""",
            "error CommandNotFound: The command x-echo has not been found",
        }));
    }

    [Test]
    public async Task Pretty_prints_the_same_replies_over_several_lines()
    {
        var (qmpShell, aqmp) = await RunBothAsync(["-p"], "query-status", "query-version", "nosuch", "qom-list path=/machine/unattached");

        var entries = AssertSameTranscript(qmpShell, aqmp);
        Assert.That(entries, Has.Count.EqualTo(4));

        // By design the layout differs: qmp-shell indents by 4 and sorts keys (Python's json.dumps),
        // aqmp indents by 2 and keeps QEMU's order.
        Assert.That(qmpShell.Stdout, Does.Contain("{\n    \"return\": {\n        \"running\": true,\n        \"singlestep\": false,\n        \"status\": \"running\"\n    }\n}"));
        Assert.That(aqmp.Stdout, Does.Contain("{\n  \"status\": \"running\",\n  \"singlestep\": false,\n  \"running\": true\n}"));
    }

    [Test]
    public async Task HMP_mode_prints_the_human_monitors_text_as_qmp_shell_does()
    {
        var (qmpShell, aqmp) = await RunBothAsync(["-H"], MachineWithCpu, quits: true,
            "info status", "stop", "info status", "nosuchcmd", "cpu 0", "cpu 3", "info version", "help quit", "quit");

        // Up to a traceback: qmp-shell 7.2 at times dies closing after QEMU quit (see the quit spec).
        var theirs = ShellTranscript.HmpOfQmpShell(qmpShell.Stdout);

        // aqmp's error for a CPU that does not exist says which index and why.
        var ours = ShellTranscript.HmpOfAqmp(aqmp.Stdout).Select(line => line.StartsWith("error: bad CPU index 3: ", StringComparison.Ordinal) ? "bad CPU index" : line);
        Assert.That(ours, Is.EqualTo(theirs), Describe(qmpShell, aqmp));
        Assert.That(theirs, Does.Contain("VM status: paused (prelaunch)").And.Contain("unknown command: 'nosuchcmd'").And.Contain("bad CPU index"));
        Assert.That(theirs, Has.Some.StartWith("quit|q").And.Some.StartWith("7.2."));
    }

    [Test]
    public async Task A_transaction_typed_over_several_lines_or_on_one_runs_as_through_qmp_shell()
    {
        var (qmpShell, aqmp) = await RunBothAsync(["-v"],
            "blockdev-add driver=null-co node-name=d0 size=1048576",
            "transaction(",
            "block-dirty-bitmap-add node=d0 name=b0",
            "block-dirty-bitmap-add node=d0 name=b1 persistent=false granularity=65536",
            ")",
            "transaction( block-dirty-bitmap-add node=d0 name=b0 )",
            "transaction(",
            "block-dirty-bitmap-add node=d0 name=b2",
            "abort",
            ")",
            "block-dirty-bitmap-remove node=d0 name=b1",
            "block-dirty-bitmap-remove node=d0 name=b2");

        var entries = AssertSameTranscript(qmpShell, aqmp);
        Assert.That(entries.Where(e => e.StartsWith("sent ", StringComparison.Ordinal)), Has.Exactly(3).Contains("\"execute\":\"transaction\""));
        Assert.That(entries, Does.Contain("error GenericError: Bitmap already exists: b0"));
        Assert.That(entries, Does.Contain("error GenericError: Transaction aborted using Abort action"));
        Assert.That(entries[^1], Is.EqualTo("error GenericError: Dirty bitmap 'b2' not found"), "the aborted transaction added nothing");
    }

    [Test]
    public async Task An_unknown_command_and_malformed_lines_are_reported_and_the_shell_goes_on()
    {
        var (qmpShell, aqmp) = await RunBothAsync([],
            "nosuch",
            "query-status extra",
            "qom-get path=/machine path=/machine property=type",
            "query-name");

        var entries = AssertSameTranscript(qmpShell, aqmp);
        Assert.That(entries, Is.EqualTo(new[]
        {
            "error CommandNotFound: The command nosuch has not been found",
            ShellTranscript.ParseError,
            ShellTranscript.ParseError,
            "return {}",
        }));
    }

    [Test]
    public async Task Quit_prints_its_empty_reply_QEMU_exits_and_so_does_the_shell_with_0()
    {
        var (qmpShell, aqmp) = await RunBothAsync([], [], quits: true, "query-status", "quit");

        // qmp-shell 7.2, closing at end of input after QEMU has quit, at times dies in its
        // disconnect (EOFError or ConnectionResetError from the closed socket): a race of its own,
        // so its exit code and a traceback after the last reply are not compared.
        var theirs = ShellTranscript.OfQmpShell(qmpShell.Stdout).TakeWhile(entry => entry != ShellTranscript.Crash);
        Assert.That(ShellTranscript.OfAqmp(aqmp.Stdout), Is.EqualTo(theirs), Describe(qmpShell, aqmp));
        Assert.That(theirs, Is.EqualTo(new[] { "return {\"running\":true,\"singlestep\":false,\"status\":\"running\"}", "return {}" }));
        Assert.That(aqmp.ExitCode, Is.Zero, aqmp.ToString());
        Assert.That(aqmp.Stdout, Does.EndWith("The server quit: session closed.\n"));
    }

    [Test]
    public async Task Differences_by_design_in_values_dotted_keys_and_lines_after_quit()
    {
        var (qmpShell, aqmp) = await RunBothAsync(["-v"], [], quits: true,
            """x-echo dq="a b" sq='c d' real=1.5 nothing=null""",
            "x-echo a.b=1 c=2",
            "x-echo open={bad",
            "quit",
            "query-status");
        const string NotFound = "error CommandNotFound: The command x-echo has not been found";

        // qmp-shell 7.2 sends quotes as part of the value, 1.5 and null as strings, the keys after
        // a dotted key inside its object, and an unbalanced value as text; it reads on after quit,
        // sends the next line on the closed socket and dies with a traceback (exit 1).
        Assert.That(ShellTranscript.OfQmpShell(qmpShell.Stdout), Is.EqualTo(new[]
        {
            """sent {"arguments":{"dq":"\"a b\"","nothing":"null","real":"1.5","sq":"'c d'"},"execute":"x-echo"}""", NotFound,
            """sent {"arguments":{"a":{"b":1,"c":2}},"execute":"x-echo"}""", NotFound,
            """sent {"arguments":{"open":"{bad"},"execute":"x-echo"}""", NotFound,
            """sent {"execute":"quit"}""", "return {}",
            """sent {"execute":"query-status"}""", ShellTranscript.Crash,
        }), qmpShell.ToString());
        Assert.That(qmpShell.ExitCode, Is.EqualTo(1));

        // aqmp takes quotes as quotes (issue 15: command-line='info status'), QMP's number and null
        // as JSON, a dotted key for itself alone, rejects the unbalanced line, and ends at quit
        // (issue 15: clean ends), exit 1 for the failed lines.
        Assert.That(ShellTranscript.OfAqmp(aqmp.Stdout), Is.EqualTo(new[]
        {
            """sent {"arguments":{"dq":"a b","nothing":null,"real":1.5,"sq":"c d"},"execute":"x-echo"}""", NotFound,
            """sent {"arguments":{"a":{"b":1},"c":2},"execute":"x-echo"}""", NotFound,
            ShellTranscript.ParseError,
            """sent {"execute":"quit"}""", "return {}",
        }), aqmp.ToString());
        Assert.That(aqmp.ExitCode, Is.EqualTo(1), aqmp.ToString());
    }

    [Test]
    public async Task The_same_keys_on_a_terminal_run_the_same_lines_through_Tab_completion_history_recall_and_editing()
    {
        if (!File.Exists(PseudoTerminalShell.Script))
        {
            Assert.Ignore("util-linux's script is not installed");
        }

        QmpShellProcess.RequireOrIgnore();
        await using var forQmpShell = await QemuProcess.StartAsync();
        await using var forAqmp = await QemuProcess.StartAsync();
        var home = Directory.CreateTempSubdirectory("aqmp-differential-pty-").FullName;
        try
        {
            var ourHistory = Path.Combine(home, "aqmp_history");
            using var qmpShell = PseudoTerminalShell.StartCommand($"python3 -m qemu.qmp.qmp_shell '{forQmpShell.SocketPath}'", new Dictionary<string, string>
            {
                ["PYTHONPATH"] = QmpShellProcess.Directory,
                ["PYTHONDONTWRITEBYTECODE"] = "1",
                ["HOME"] = home,
                ["TERM"] = "xterm",
            });
            using var aqmp = PseudoTerminalShell.StartCommand($"{AqmpProcess.ShellCommand} shell --history-file '{ourHistory}' '{forAqmp.SocketPath}'", new Dictionary<string, string>
            {
                ["DOTNET_NOLOGO"] = "1",
                ["HOME"] = home,
                ["TERM"] = "xterm",
            });

            // Ctrl-U drops "stop", Tab completes query-vers (one command fits); Up recalls it; a typo
            // mended with Backspace, then Ctrl-A, nine Rights, two letters typed and rubbed out, Ctrl-E.
            var exits = await Task.WhenAll(TypeAsync(qmpShell), TypeAsync(aqmp));

            Assert.That(exits, Is.EqualTo(new[] { 0, 0 }), $"qmp-shell:\n{qmpShell.Output}\naqmp:\n{aqmp.Output}");
            Assert.That(Replies(aqmp.Output), Is.EqualTo(Replies(qmpShell.Output)).And.Count.EqualTo(3), $"qmp-shell:\n{qmpShell.Output}\naqmp:\n{aqmp.Output}");

            // Both keep a line run twice in a row once. By design aqmp's Tab puts a space after a
            // completed command name (readline's default); qmp-shell's (Python's readline) does not.
            string[] ran = ["query-version", "qom-get path=/machine property=type"];
            Assert.That(File.ReadAllLines(Path.Combine(home, ".qmp-shell_history")), Is.EqualTo(ran));
            Assert.That(File.ReadAllLines(ourHistory).Select(line => line.TrimEnd()), Is.EqualTo(ran));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }

        static async Task<int> TypeAsync(PseudoTerminalShell shell)
        {
            await shell.WaitForAsync("(QEMU) ");
            await shell.SendAsync("stop\x15query-vers\t\r");
            await shell.WaitForAsync("\"package\"", 1);
            await shell.SendAsync("\x1b[A\r");
            await shell.WaitForAsync("\"package\"", 2);
            await shell.SendAsync("qom-get path=/machine propertx\x7fy=type\x01" + string.Concat(Enumerable.Repeat("\x1b[C", 9)) + "xx\x7f\x7f\x05\r");
            await shell.WaitForAsync("none-machine");
            await shell.SendAsync("\x04");
            return await shell.ExitCodeAsync();
        }
    }

    private static Task<(AqmpResult QmpShell, AqmpResult Aqmp)> RunBothAsync(string[] flags, params string[] lines) => RunBothAsync(flags, [], quits: false, lines);

    private static Task<(AqmpResult QmpShell, AqmpResult Aqmp)> RunBothAsync(string[] flags, string[] machine, bool quits, params string[] lines) =>
        RunPipedAsync(flags, machine.Length == 0 ? null : machine, quits, lines);

    /// <summary>
    /// Pipes <paramref name="lines"/> through qmp-shell and through <c>aqmp shell</c> (both with
    /// <paramref name="flags"/>), each against its own fresh QEMU, at the same time. With
    /// <paramref name="quits"/> both QEMUs must then have exited with 0.
    /// </summary>
    private static async Task<(AqmpResult QmpShell, AqmpResult Aqmp)> RunPipedAsync(string[] flags, IReadOnlyList<string>? machine, bool quits, string[] lines)
    {
        QmpShellProcess.RequireOrIgnore();
        var starting = new[] { QemuProcess.StartAsync(machine: machine), QemuProcess.StartAsync(machine: machine) };
        try
        {
            await Task.WhenAll(starting);
        }
        catch
        {
            foreach (var started in starting.Where(t => t.IsCompletedSuccessfully))
            {
                await started.Result.DisposeAsync();
            }

            throw;
        }

        await using var forQmpShell = starting[0].Result;
        await using var forAqmp = starting[1].Result;
        var input = string.Join('\n', lines) + "\n";
        var runs = await Task.WhenAll(
            QmpShellProcess.RunAsync(flags, forQmpShell.SocketPath, input),
            QmpShellProcess.RunAqmpAsync(flags, forAqmp.SocketPath, input));
        if (quits)
        {
            Assert.That(await forQmpShell.WaitForExitAsync(), Is.Zero, $"QEMU after qmp-shell's quit: {forQmpShell.StandardError}");
            Assert.That(await forAqmp.WaitForExitAsync(), Is.Zero, $"QEMU after aqmp's quit: {forAqmp.StandardError}");
        }

        return (runs[0], runs[1]);
    }

    /// <summary>Asserts that both shells name the same QEMU and printed the same entries; returns them.</summary>
    private static IReadOnlyList<string> AssertSameTranscript(AqmpResult qmpShell, AqmpResult aqmp)
    {
        var theirs = ShellTranscript.OfQmpShell(qmpShell.Stdout);
        var ours = ShellTranscript.OfAqmp(aqmp.Stdout);
        Assert.That(ShellTranscript.BannerVersion(aqmp.Stdout), Is.EqualTo(ShellTranscript.BannerVersion(qmpShell.Stdout)), Describe(qmpShell, aqmp));
        Assert.That(ours, Is.EqualTo(theirs), Describe(qmpShell, aqmp));
        Assert.That(theirs, Has.None.StartsWith(ShellTranscript.Crash).And.None.StartsWith("unparsed").And.None.StartsWith("other"), Describe(qmpShell, aqmp));
        return theirs;
    }

    /// <summary>The replies a shell printed on a terminal (lines of JSON off the prompt), qmp-shell's <c>{"return": X}</c> read as X.</summary>
    private static List<string> Replies(string terminalOutput) =>
        terminalOutput.Split('\n')
            .Select(line => TerminalControls().Replace(line, string.Empty).Trim())
            .Where(line => !line.Contains("(QEMU)", StringComparison.Ordinal) && line.Length > 0 && line[0] is '{' or '"')
            .Select(line => JsonNode.Parse(line) is JsonObject { Count: 1 } reply && reply.ContainsKey("return") ? reply["return"] : JsonNode.Parse(line))
            .Select(ShellTranscript.Canonical)
            .ToList();

    [GeneratedRegex(@"\x1b\[[0-9;?]*[A-Za-z@]|\x1b[=>]|\x08")]
    private static partial Regex TerminalControls();

    private static string Describe(AqmpResult qmpShell, AqmpResult aqmp) => $"qmp-shell: {qmpShell}\naqmp: {aqmp}";
}
