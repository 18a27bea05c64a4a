using System.Diagnostics;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests;

/// <summary>
/// <c>aqmp completion SHELL</c>: the bash script is sourced into a real bash, which is asked to
/// complete command lines as on Tab (COMP_WORDS, COMP_CWORD, then the completion function).
/// </summary>
[TestFixture]
public sealed class CompletionCommandTests : TempDirectoryTest
{
    private string _bashScript = string.Empty;

    [OneTimeSetUp]
    public async Task WriteTheBashScript()
    {
        var result = await AqmpProcess.RunAsync("completion", "bash");
        ToolAssert.Success(result);
        _bashScript = result.Stdout;
    }

    [TestCase("", "shell", "execute", "events", "serve", "completion", "help")]
    [TestCase("ex", "execute")]
    [TestCase("--v", "--version")]
    public async Task Bash_completes_the_subcommand_names_and_aqmp_options(string typed, params string[] expected)
    {
        Assert.That(await CompleteAsync(["aqmp", typed]), Is.EqualTo(expected));
    }

    [TestCase("execute", "--", "--timeout", "--connect-timeout", "--help")]
    [TestCase("events", "--c", "--count", "--connect-timeout")]
    [TestCase("shell", "-", "--pretty", "-p", "--hmp", "-H", "--verbose", "-v", "--skip-negotiation", "-N", "--logfile", "-l", "--history-file", "--connect-timeout", "--help", "-h")]
    [TestCase("serve", "--n", "--negotiation-timeout")]
    public async Task Bash_completes_a_subcommands_options(string subcommand, string typed, params string[] expected)
    {
        Assert.That(await CompleteAsync(["aqmp", subcommand, typed]), Is.EquivalentTo(expected));
    }

    [Test]
    public async Task Bash_completes_executes_COMMAND_from_the_QMP_schema_after_ADDRESS_and_options_with_values()
    {
        var afterAddress = await CompleteAsync(["aqmp", "execute", "/run/qemu.sock", "query-st"]);
        var afterOptions = await CompleteAsync(["aqmp", "execute", "--timeout", "5", "/run/qemu.sock", "--connect-timeout", "2", "query-st"]);
        var all = await CompleteAsync(["aqmp", "execute", "/run/qemu.sock", ""]);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(afterAddress, Does.Contain("query-status").And.All.StartWith("query-st"));
            Assert.That(afterOptions, Is.EqualTo(afterAddress));
            Assert.That(all, Does.Contain("qmp_capabilities").And.Contain("human-monitor-command").And.Contain("device_add"));
            Assert.That(all, Has.Count.GreaterThan(100));
        }
    }

    [Test]
    public async Task Bash_completes_file_names_for_ADDRESS_and_FILE_but_nothing_for_a_number_or_JSON()
    {
        File.WriteAllText(Path.Combine(TempDirectory, "qmp-socket-file"), string.Empty);
        var prefix = Path.Combine(TempDirectory, "qmp-");

        using (Assert.EnterMultipleScope())
        {
            Assert.That(await CompleteAsync(["aqmp", "execute", prefix]), Is.EqualTo(new[] { prefix + "socket-file" }));
            Assert.That(await CompleteAsync(["aqmp", "shell", "-l", prefix]), Is.EqualTo(new[] { prefix + "socket-file" }));
            Assert.That(await CompleteAsync(["aqmp", "execute", "--timeout", ""]), Is.Empty);
            Assert.That(await CompleteAsync(["aqmp", "execute", "sock", "query-status", ""]), Is.Empty);
        }
    }

    [TestCase("completion", "", "bash", "zsh", "fish")]
    [TestCase("help", "e", "execute", "events")]
    public async Task Bash_completes_the_words_an_argument_accepts(string subcommand, string typed, params string[] expected)
    {
        Assert.That(await CompleteAsync(["aqmp", subcommand, typed]), Is.EquivalentTo(expected));
    }

    [TestCase("zsh", "bashcompinit")]
    [TestCase("fish", "complete -c aqmp")]
    public async Task Zsh_and_fish_scripts_complete_the_same_subcommands_and_QMP_commands(string shell, string marker)
    {
        var result = await AqmpProcess.RunAsync("completion", shell);

        ToolAssert.Success(result);
        Assert.That(result.Stdout, Does.Contain(marker).And.Contain("query-status").And.Contain("--connect-timeout").And.Contain("execute"));
    }

    /// <summary>What bash offers on Tab after <paramref name="words"/> (the last one being typed), one completion a line.</summary>
    private async Task<IReadOnlyList<string>> CompleteAsync(string[] words)
    {
        var scriptPath = Path.Combine(TempDirectory, "aqmp.bash");
        await File.WriteAllTextAsync(scriptPath, _bashScript);
        var quoted = string.Join(' ', words.Select(word => "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var info = new ProcessStartInfo("bash")
        {
            ArgumentList = { "--norc", "--noprofile", "-c", $"source '{scriptPath}' && COMP_WORDS=({quoted}) && COMP_CWORD={words.Length - 1} && _aqmp && printf '%s\\n' \"${{COMPREPLY[@]}}\"" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var bash = Process.Start(info)!;
        using var limit = new CancellationTokenSource(TestTimeouts.Default);
        var stdout = bash.StandardOutput.ReadToEndAsync(limit.Token);
        var stderr = bash.StandardError.ReadToEndAsync(limit.Token);
        await bash.WaitForExitAsync(limit.Token);
        Assert.That((bash.ExitCode, await stderr), Is.EqualTo((0, string.Empty)), $"bash completing {quoted}");
        return [.. (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }
}
