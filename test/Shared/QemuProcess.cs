using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Aqmp.Pipelines.Testing;

/// <summary>
/// A real QEMU without a guest (<c>-M none</c>) speaking QMP on a fresh Unix socket. Started by
/// <see cref="StartAsync"/>, which returns once the socket accepts connections; disposing kills
/// QEMU if it still runs and deletes the socket path. QEMU's stderr is captured for failure messages.
/// </summary>
internal sealed class QemuProcess : IAsyncDisposable
{
    /// <summary>The QEMU binary the tests run.</summary>
    public const string ExecutableName = "qemu-system-x86_64";

    /// <summary>Set to <c>1</c> to make a missing QEMU fail the tests instead of skipping them.</summary>
    public const string RequireVariable = "AQMP_REQUIRE_QEMU";

    private static readonly TimeSpan StartupLimit = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ExitLimit = TimeSpan.FromSeconds(10);
    private static readonly Lazy<string?> s_executable = new(() => FindOnPath(ExecutableName));

    private readonly Process _process;
    private readonly Lock _stderrGate = new();
    private readonly StringBuilder _stderr = new();
    private int _pid;
    private int _disposed;

    private QemuProcess(Process process, string socketPath, EndPoint endPoint)
    {
        _process = process;
        SocketPath = socketPath;
        EndPoint = endPoint;
    }

    /// <summary>The full path of the QEMU binary on PATH, or null when there is none.</summary>
    public static string? Executable => s_executable.Value;

    /// <summary>The Unix socket QEMU listens on; empty when it listens on TCP.</summary>
    public string SocketPath { get; }

    /// <summary>Where QEMU listens: a Unix socket, or a TCP port on 127.0.0.1.</summary>
    public EndPoint EndPoint { get; }

    /// <summary>The socket as an address for <c>ConnectAsync</c>.</summary>
    public string Address => EndPoint is IPEndPoint ip ? $"127.0.0.1:{ip.Port}" : "unix:" + SocketPath;

    /// <summary>The QEMU process.</summary>
    public Process Process => _process;

    /// <summary>Everything QEMU wrote to stderr so far.</summary>
    public string StandardError
    {
        get
        {
            lock (_stderrGate)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>
    /// Skips the calling test (<see cref="Assert.Ignore(string)"/>) when QEMU is not on PATH, or
    /// fails it when <see cref="RequireVariable"/> is <c>1</c>.
    /// </summary>
    public static void RequireOrIgnore()
    {
        if (Executable is not null)
        {
            return;
        }

        var reason = $"'{ExecutableName}' is not on PATH";
        if (Environment.GetEnvironmentVariable(RequireVariable) == "1")
        {
            Assert.Fail($"{reason}, but {RequireVariable}=1 requires the QEMU integration tests to run: install QEMU (Debian: apt-get install qemu-system-x86) or unset {RequireVariable}.");
        }

        Assert.Ignore($"{reason}: QEMU integration test skipped (set {RequireVariable}=1 to make this a failure).");
    }

    /// <summary>Starts QEMU on a fresh socket path (or a free TCP port on 127.0.0.1) and waits until the socket accepts connections.</summary>
    /// <param name="overTcp">Listen on TCP instead of a Unix socket.</param>
    /// <param name="machine">The machine options; <c>-M none</c> (no CPU) when null.</param>
    /// <returns>The running QEMU.</returns>
    /// <exception cref="InvalidOperationException">QEMU exited during startup (its stderr is quoted).</exception>
    /// <exception cref="TimeoutException">The socket did not accept connections in time.</exception>
    public static async Task<QemuProcess> StartAsync(bool overTcp = false, IReadOnlyList<string>? machine = null)
    {
        RequireOrIgnore();
        var path = overTcp ? string.Empty : Path.Combine(Path.GetTempPath(), $"aqmp-qemu-{Guid.NewGuid():N}.sock");
        EndPoint endPoint = overTcp ? new IPEndPoint(IPAddress.Loopback, FreeTcpPort()) : new UnixDomainSocketEndPoint(path);
        var monitor = endPoint is IPEndPoint tcp ? $"tcp:127.0.0.1:{tcp.Port},server=on,wait=off" : $"unix:{path},server=on,wait=off";
        var info = new ProcessStartInfo(Executable!)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in (string[])[.. machine ?? ["-M", "none"], "-nodefaults", "-display", "none", "-qmp", monitor])
        {
            info.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = info };
        var qemu = new QemuProcess(process, path, endPoint);
        process.ErrorDataReceived += (_, e) => qemu.AppendStandardError(e.Data);
        process.OutputDataReceived += (_, _) => { };
        process.Start();
        qemu._pid = process.Id;
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            await qemu.WaitUntilAcceptingAsync().ConfigureAwait(false);
        }
        catch
        {
            await qemu.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return qemu;
    }

    /// <summary>Kills QEMU at once (SIGKILL): its connections drop without a word.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>
    /// Freezes QEMU with SIGSTOP: it still holds its socket, so what a client sends is buffered by
    /// the kernel and never answered. Lets a test have executes pending for sure.
    /// </summary>
    public void Suspend()
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-STOP", _pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false })
            ?? throw new InvalidOperationException("Could not run 'kill -STOP'.");
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"'kill -STOP {_pid}' failed with exit code {kill.ExitCode}.");
        }
    }

    /// <summary>Waits (bounded) for QEMU to exit and returns its exit code.</summary>
    /// <returns>The exit code.</returns>
    /// <exception cref="TimeoutException">QEMU is still running after the bound.</exception>
    public async Task<int> WaitForExitAsync()
    {
        using var timeout = new CancellationTokenSource(ExitLimit);
        try
        {
            await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            throw new TimeoutException($"QEMU (pid {_pid}) did not exit within {ExitLimit}.{Describe()}");
        }

        return _process.ExitCode;
    }

    /// <summary>Kills QEMU if it still runs, waits for it, and deletes the socket path.</summary>
    /// <returns>A task that completes when QEMU is gone.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            if (!HasExited())
            {
                Kill();
            }

            await WaitForExitAsync().ConfigureAwait(false);
        }
        finally
        {
            _process.Dispose();
            if (SocketPath.Length > 0)
            {
                TryDelete(SocketPath);
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"QEMU pid {_pid} on {Address}";

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    private static int FreeTcpPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static string? FindOnPath(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var directory in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: a leftover socket file in the temp directory harms nobody.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private bool HasExited()
    {
        try
        {
            return _process.HasExited;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }

    private void AppendStandardError(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_stderrGate)
        {
            _stderr.AppendLine(line);
        }
    }

    private string Describe()
    {
        var stderr = StandardError;
        return stderr.Length == 0 ? " QEMU wrote nothing to stderr." : $" QEMU's stderr:{Environment.NewLine}{stderr}";
    }

    /// <summary>
    /// Polls until a connection to the socket succeeds and QEMU greets it, then closes that probe
    /// (QEMU then serves the next client). Waiting for the greeting matters: QEMU serves one client
    /// per monitor, and a client that connected while the probe was still waiting to be accepted
    /// could be accepted beside it and dropped (seen as a reset or a second greeting).
    /// </summary>
    private static async Task ReadGreetingAsync(Socket probe)
    {
        using var limit = new CancellationTokenSource(StartupLimit);
        var buffer = new byte[4096];
        while (true)
        {
            var read = await probe.ReceiveAsync(buffer, SocketFlags.None, limit.Token).ConfigureAwait(false);
            if (read == 0 || Array.IndexOf(buffer, (byte)'\n', 0, read) >= 0)
            {
                return;
            }
        }
    }

    private async Task WaitUntilAcceptingAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (HasExited())
            {
                // Let the stderr reader catch up before quoting it.
                await _process.WaitForExitAsync().WaitAsync(ExitLimit).ConfigureAwait(false);
                throw new InvalidOperationException($"{ExecutableName} exited with code {_process.ExitCode} before listening on {Address}.{Describe()}");
            }

            using (var probe = new Socket(EndPoint.AddressFamily, SocketType.Stream, EndPoint is IPEndPoint ? ProtocolType.Tcp : ProtocolType.Unspecified))
            {
                try
                {
                    await probe.ConnectAsync(EndPoint).ConfigureAwait(false);
                    await ReadGreetingAsync(probe).ConfigureAwait(false);
                    return;
                }
                catch (SocketException) when (deadline.Elapsed < StartupLimit)
                {
                    // Not bound or not listening yet.
                }
                catch (SocketException ex)
                {
                    throw new TimeoutException($"QEMU (pid {_pid}) did not accept connections on {Address} within {StartupLimit}: {ex.Message}.{Describe()}", ex);
                }
            }

            await Task.Delay(10).ConfigureAwait(false);
        }
    }
}
