using System.Diagnostics;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Cli.Tests.Support;

/// <summary>
/// QEMU 7.2's own qmp-shell (<c>python3 -m qemu.qmp.qmp_shell</c>), which <c>aqmp shell</c> imitates,
/// run on piped input. Its Python package is not in the repository: <c>.ci/get-qmp-shell</c> takes
/// it from Debian's qemu source package into <see cref="DefaultDirectory"/>
/// (or <see cref="DirectoryVariable"/> names another place). It runs with HOME set to a fresh
/// directory, so its history file touches nobody's. <c>aqmp shell</c> runs here the same way, so that
/// a test compares the two on equal terms.
/// </summary>
internal static class QmpShellProcess
{
    /// <summary>Where <c>.ci/get-qmp-shell</c> puts the package by default (it holds <c>qemu/qmp/qmp_shell.py</c>).</summary>
    public const string DefaultDirectory = "/opt/qmp-shell-7.2";

    /// <summary>Names another directory holding <c>qemu/qmp/qmp_shell.py</c>.</summary>
    public const string DirectoryVariable = "AQMP_QMP_SHELL";

    private static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(5);

    /// <summary>The directory to put on PYTHONPATH.</summary>
    public static string Directory => Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } named ? named : DefaultDirectory;

    /// <summary>
    /// Skips the calling test when QEMU or qmp-shell (with python3) is missing, or fails it when
    /// <see cref="QemuProcess.RequireVariable"/> is <c>1</c>, as for QEMU itself.
    /// </summary>
    public static void RequireOrIgnore()
    {
        QemuProcess.RequireOrIgnore();
        var script = Path.Combine(Directory, "qemu", "qmp", "qmp_shell.py");
        var reason = !File.Exists(script) ? $"qmp-shell is not at {script}"
            : FindOnPath("python3") is null ? "python3 is not on PATH"
            : null;
        if (reason is null)
        {
            return;
        }

        if (Environment.GetEnvironmentVariable(QemuProcess.RequireVariable) == "1")
        {
            Assert.Fail($"{reason}, but {QemuProcess.RequireVariable}=1 requires the qmp-shell differential tests to run: run 'bash .ci/get-qmp-shell' as root (it takes qmp-shell from Debian's qemu source package) or set {DirectoryVariable} to a directory holding qemu/qmp/qmp_shell.py.");
        }

        Assert.Ignore($"{reason}: qmp-shell differential test skipped (run 'bash .ci/get-qmp-shell' as root; set {QemuProcess.RequireVariable}=1 to make this a failure).");
    }

    /// <summary>
    /// Runs <c>qmp-shell FLAGS SOCKET</c> on <paramref name="input"/> (stdin then closed) until it exits;
    /// its stdout and stderr go to one pipe, unbuffered, so that the result keeps their order.
    /// </summary>
    /// <returns>Its exit code and its output (in <see cref="AqmpResult.Stdout"/>).</returns>
    public static Task<AqmpResult> RunAsync(IReadOnlyList<string> flags, string socketPath, string input) =>
        RunMergedAsync(["python3", "-m", "qemu.qmp.qmp_shell", .. flags, socketPath], input, new Dictionary<string, string>
        {
            ["PYTHONPATH"] = Directory,
            ["PYTHONDONTWRITEBYTECODE"] = "1",
            ["PYTHONUNBUFFERED"] = "1",
        });

    /// <summary>Runs <c>aqmp shell FLAGS SOCKET</c> as <see cref="RunAsync"/> runs qmp-shell: one pipe for both outputs.</summary>
    /// <returns>Its exit code and its output (in <see cref="AqmpResult.Stdout"/>).</returns>
    public static Task<AqmpResult> RunAqmpAsync(IReadOnlyList<string> flags, string socketPath, string input) =>
        RunMergedAsync([.. AqmpProcess.CommandWords, "shell", .. flags, socketPath], input, new Dictionary<string, string>
        {
            ["DOTNET_NOLOGO"] = "1",
            ["NO_COLOR"] = "1",
        });

    /// <summary>
    /// Runs <paramref name="command"/> through <c>sh -c 'exec "$@" 2>&amp;1'</c> with HOME set to a
    /// fresh directory (deleted after), writes <paramref name="input"/> and closes stdin, and waits
    /// (bounded by <see cref="AqmpProcess.DefaultLimit"/>, then killed and the test failed) for the exit.
    /// </summary>
    private static async Task<AqmpResult> RunMergedAsync(IReadOnlyList<string> command, string input, IReadOnlyDictionary<string, string> environment)
    {
        var home = System.IO.Directory.CreateTempSubdirectory("aqmp-differential-home-").FullName;
        var info = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in (string[])["-c", "exec \"$@\" 2>&1", "sh", .. command])
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        info.Environment["HOME"] = home;
        info.Environment.Remove("QMP_SOCKET");
        info.Environment.Remove("AQMP_HISTORY");
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start /bin/sh");
        try
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.StandardInput.WriteAsync(input);
            process.StandardInput.Close();
            using var limit = new CancellationTokenSource(AqmpProcess.DefaultLimit);
            try
            {
                await process.WaitForExitAsync(limit.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"'{string.Join(' ', command)}' still ran after {AqmpProcess.DefaultLimit}; killed.{AqmpResult.DescribeOutputs(await output.WaitAsync(DrainLimit), await error.WaitAsync(DrainLimit))}");
            }

            return new AqmpResult(command, process.ExitCode, await output.WaitAsync(DrainLimit), await error.WaitAsync(DrainLimit));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            System.IO.Directory.Delete(home, recursive: true);
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);
}
