using System.Diagnostics;
using System.Text;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>
/// The built tool's <c>aqmp shell</c> (built-in simulator), or another command, on a real
/// pseudo-terminal 100 columns wide, made by util-linux's <c>script</c>: bytes a terminal sends for keys go in, what the
/// terminal would show is collected. Killed if still running after <see cref="AqmpProcess.DefaultLimit"/>.
/// </summary>
internal sealed class PseudoTerminalShell : IDisposable
{
    /// <summary>Where <c>script</c> is expected.</summary>
    public const string Script = "/usr/bin/script";

    private readonly Process _process;
    private readonly Timer _limit;
    private readonly StringBuilder _output = new();
    private readonly Task _reading;

    private PseudoTerminalShell(Process process)
    {
        _process = process;
        _limit = new Timer(_ => Kill(), null, AqmpProcess.DefaultLimit, Timeout.InfiniteTimeSpan);
        _reading = Task.Run(PumpAsync);
    }

    /// <summary>What the terminal received so far, its CR LF line ends turned into LF.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString().Replace("\r\n", "\n", StringComparison.Ordinal);
            }
        }
    }

    /// <summary>Starts the shell with the history kept in <paramref name="historyFile"/>, on its built-in simulator or on <paramref name="address"/>.</summary>
    public static PseudoTerminalShell Start(string historyFile, string? address = null) =>
        StartCommand(
            $"{AqmpProcess.ShellCommand} shell -p --history-file '{historyFile}'{(address is null ? string.Empty : $" '{address}'")}",
            new Dictionary<string, string> { ["DOTNET_NOLOGO"] = "1" });

    /// <summary>Starts <paramref name="command"/> (a <c>sh</c> command line) on the terminal, with <paramref name="environment"/> added to its environment.</summary>
    public static PseudoTerminalShell StartCommand(string command, IReadOnlyDictionary<string, string> environment)
    {
        var info = new ProcessStartInfo(Script)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            StandardOutputEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add("-qfec");
        info.ArgumentList.Add($"stty cols 100 rows 40; exec {command}");
        info.ArgumentList.Add("/dev/null");
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        return new PseudoTerminalShell(Process.Start(info) ?? throw new InvalidOperationException("could not start script"));
    }

    /// <summary>Sends <paramref name="keys"/> as a terminal would (for example <c>\x15</c> for Ctrl-U).</summary>
    public async Task SendAsync(string keys)
    {
        await _process.StandardInput.WriteAsync(keys);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>Waits until the output holds <paramref name="text"/>; fails the test after <see cref="TestTimeouts.Default"/>.</summary>
    public async Task WaitForAsync(string text)
    {
        var deadline = Stopwatch.StartNew();
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            Assert.That(deadline.Elapsed, Is.LessThan(TestTimeouts.Default), $"never saw {text} in:\n{Output}");
            await Task.Delay(20);
        }
    }

    /// <summary>Waits until the output holds <paramref name="text"/> at least <paramref name="times"/> times; fails the test after <see cref="TestTimeouts.Default"/>.</summary>
    public async Task WaitForAsync(string text, int times)
    {
        var deadline = Stopwatch.StartNew();
        while (Output.Split(text).Length - 1 < times)
        {
            Assert.That(deadline.Elapsed, Is.LessThan(TestTimeouts.Default), $"never saw {text} {times} times in:\n{Output}");
            await Task.Delay(20);
        }
    }

    /// <summary>Waits for the shell to exit and returns its exit code.</summary>
    public async Task<int> ExitCodeAsync()
    {
        await _process.WaitForExitAsync().Bounded();
        await _reading.Bounded();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        _limit.Dispose();
        Kill();
        _process.Dispose();
    }

    private void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private async Task PumpAsync()
    {
        var buffer = new char[4096];
        int read;
        while ((read = await _process.StandardOutput.ReadAsync(buffer)) > 0)
        {
            lock (_output)
            {
                _output.Append(buffer, 0, read);
            }
        }
    }
}
