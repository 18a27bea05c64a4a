using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;

namespace Aqmp.Pipelines.Benchmarks.Qmp;

/// <summary>
/// A real QEMU without a guest (<c>-M none</c>) serving QMP on a fresh Unix socket. It runs under a
/// small <c>/bin/sh</c> watchdog that kills it as soon as the watchdog's stdin closes, which
/// happens on <see cref="Dispose"/> and also when the benchmark process dies without cleaning up,
/// so no QEMU outlives its benchmark.
/// </summary>
internal sealed class QemuProcess : IDisposable
{
    /// <summary>The QEMU binary the benchmarks run.</summary>
    public const string ExecutableName = "qemu-system-x86_64";

    // "$0" is QEMU, "$@" its arguments; "read" returns when stdin closes (EOF or our death).
    private const string Watchdog = "\"$0\" \"$@\" </dev/null & qemu=$!; read -r _; kill \"$qemu\" 2>/dev/null; wait \"$qemu\"";

    private static readonly TimeSpan StartupLimit = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ExitLimit = TimeSpan.FromSeconds(10);
    private static readonly Lazy<string?> s_executable = new(() => FindOnPath(ExecutableName));

    private readonly Process _watchdog;
    private readonly StringBuilder _output = new();
    private readonly Lock _outputGate = new();

    private QemuProcess(Process watchdog, string socketPath)
    {
        _watchdog = watchdog;
        SocketPath = socketPath;
    }

    /// <summary>The full path of QEMU on PATH, or null.</summary>
    public static string? Executable => s_executable.Value;

    /// <summary>The Unix socket QEMU's QMP monitor listens on.</summary>
    public string SocketPath { get; }

    /// <summary>Starts QEMU and waits until its socket accepts connections.</summary>
    /// <returns>The running QEMU.</returns>
    /// <exception cref="InvalidOperationException">QEMU is not on PATH, or did not start listening.</exception>
    public static QemuProcess Start()
    {
        var executable = Executable ?? throw new InvalidOperationException($"{ExecutableName} is not on PATH.");
        var socketPath = Path.Combine(Path.GetTempPath(), $"aqmp-bench-qemu-{Guid.NewGuid():N}.sock");
        var info = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in (string[])["-c", Watchdog, executable, "-M", "none", "-nodefaults", "-display", "none", "-qmp", $"unix:{socketPath},server=on,wait=off"])
        {
            info.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = info };
        var qemu = new QemuProcess(process, socketPath);

        // Drained so that QEMU never blocks on a full pipe, and never writes into BenchmarkDotNet's own stdout protocol.
        process.OutputDataReceived += (_, e) => qemu.Append(e.Data);
        process.ErrorDataReceived += (_, e) => qemu.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            qemu.WaitUntilAccepting();
        }
        catch
        {
            qemu.Dispose();
            throw;
        }

        return qemu;
    }

    /// <summary>Closes the watchdog's stdin (it then kills QEMU and exits); kills both if that takes too long; deletes the socket.</summary>
    public void Dispose()
    {
        try
        {
            try
            {
                _watchdog.StandardInput.Close();
            }
            catch (IOException)
            {
                // The watchdog is gone already.
            }

            if (!_watchdog.WaitForExit(ExitLimit))
            {
                _watchdog.Kill(entireProcessTree: true);
                _watchdog.WaitForExit(ExitLimit);
            }
        }
        finally
        {
            _watchdog.Dispose();
            File.Delete(SocketPath);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"QEMU on {SocketPath}";

    private static string? FindOnPath(string name)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_outputGate)
            {
                _output.AppendLine(line);
            }
        }
    }

    private string Output()
    {
        lock (_outputGate)
        {
            return _output.Length == 0 ? " It wrote nothing." : $" It wrote:{Environment.NewLine}{_output}";
        }
    }

    /// <summary>Polls with a probe connection, closed at once: QEMU then serves the next client.</summary>
    private void WaitUntilAccepting()
    {
        var deadline = Stopwatch.StartNew();
        var endPoint = new UnixDomainSocketEndPoint(SocketPath);
        while (true)
        {
            if (_watchdog.HasExited)
            {
                _watchdog.WaitForExit();
                throw new InvalidOperationException($"{ExecutableName} exited before listening on {SocketPath}.{Output()}");
            }

            using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                try
                {
                    probe.Connect(endPoint);
                    return;
                }
                catch (SocketException ex) when (deadline.Elapsed >= StartupLimit)
                {
                    throw new InvalidOperationException($"{ExecutableName} did not accept connections on {SocketPath} within {StartupLimit}: {ex.Message}.{Output()}", ex);
                }
                catch (SocketException)
                {
                    // Not bound or not listening yet.
                }
            }

            Thread.Sleep(10);
        }
    }
}

/// <summary>
/// Keeps a benchmark class only when QEMU is on PATH; otherwise its benchmarks are left out of the
/// run (with one line saying so) instead of failing it.
/// </summary>
public sealed class RequiresQemuConfig : ManualConfig
{
    private static int s_reported;

    /// <summary>Adds the filter.</summary>
    public RequiresQemuConfig() => AddFilter(new SimpleFilter(_ => IsAvailable()));

    private static bool IsAvailable()
    {
        if (QemuProcess.Executable is not null)
        {
            return true;
        }

        if (Interlocked.Exchange(ref s_reported, 1) == 0)
        {
            Console.WriteLine($"// {QemuProcess.ExecutableName} is not on PATH: the QEMU benchmarks are skipped.");
        }

        return false;
    }
}
