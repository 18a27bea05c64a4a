using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace Aqmp.Pipelines.Cli.Tests.Support;

/// <summary>
/// The built <c>aqmp</c> tool running as a separate process (<c>dotnet aqmp.dll ARGS</c>, or the
/// native executable named by the environment variable <c>AQMP_TOOL</c> when it is set) with
/// stdin, stdout and stderr redirected. Every process has a time limit: on expiry it is killed
/// (and the wait for it fails the test). Disposing kills it if it still runs, and
/// <see cref="KillAll"/> (run after the whole test run) kills any process a test left behind.
/// </summary>
internal sealed class AqmpProcess : IAsyncDisposable
{
    /// <summary>How long a process may live unless a test says otherwise.</summary>
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromSeconds(20);

    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(15);
    private static readonly ConcurrentDictionary<AqmpProcess, byte> s_live = new();
    private static readonly Lazy<string> s_tool = new(FindTool);
    private static readonly Lazy<string> s_host = new(FindHost);
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    private readonly Process _process;
    private readonly TimeSpan _limit;
    private readonly Capture _stdout = new();
    private readonly Capture _stderr = new();
    private readonly Task _pumps;
    private readonly Timer _killOnExpiry;
    private int _timedOut;
    private int _disposed;

    private AqmpProcess(Process process, IReadOnlyList<string> arguments, TimeSpan limit)
    {
        _process = process;
        Arguments = arguments;
        _limit = limit;
        Id = process.Id;
        _pumps = Task.WhenAll(
            Task.Run(() => PumpAsync(process.StandardOutput, _stdout)),
            Task.Run(() => PumpAsync(process.StandardError, _stderr)));
        _killOnExpiry = new Timer(_ => Expire(), null, limit, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The environment variable naming a native <c>aqmp</c> executable to test instead of <c>aqmp.dll</c>.</summary>
    public const string ToolVariable = "AQMP_TOOL";

    /// <summary>The tool: the executable <c>AQMP_TOOL</c> names, else <c>aqmp.dll</c> as built with the tests.</summary>
    public static string ToolPath => s_tool.Value;

    /// <summary>Whether <see cref="ToolPath"/> is a native executable, started without the <c>dotnet</c> host.</summary>
    public static bool IsNative => !ToolPath.EndsWith(".dll", StringComparison.Ordinal);

    /// <summary>The <c>dotnet</c> host that runs <c>aqmp.dll</c>.</summary>
    public static string HostPath => s_host.Value;

    /// <summary>The words that start the tool: the native executable, or the host and <c>aqmp.dll</c>.</summary>
    public static IReadOnlyList<string> CommandWords => IsNative ? [ToolPath] : [HostPath, ToolPath];

    /// <summary><see cref="CommandWords"/> as the start of a <c>sh</c> command line, each word single-quoted.</summary>
    public static string ShellCommand => string.Join(' ', CommandWords.Select(word => $"'{word}'"));

    /// <summary>The process id.</summary>
    public int Id { get; }

    /// <summary>The arguments after <c>aqmp</c>.</summary>
    public IReadOnlyList<string> Arguments { get; }

    /// <summary>Everything written to stdout so far.</summary>
    public string Stdout => _stdout.Text;

    /// <summary>Everything written to stderr so far.</summary>
    public string Stderr => _stderr.Text;

    /// <summary>Whether the process has exited.</summary>
    public bool HasExited
    {
        get
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
    }

    /// <summary>Starts <c>aqmp ARGUMENTS</c> with the default time limit.</summary>
    public static AqmpProcess Start(params string[] arguments) => Start(arguments, DefaultLimit);

    /// <summary>
    /// Starts <c>aqmp ARGUMENTS</c>, to be killed after <paramref name="limit"/>, with
    /// <paramref name="environment"/> added to its environment (and no <c>QMP_SOCKET</c> inherited).
    /// </summary>
    public static AqmpProcess Start(IReadOnlyList<string> arguments, TimeSpan limit, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(CommandWords[0])
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardInputEncoding = Utf8,
            StandardOutputEncoding = Utf8,
            StandardErrorEncoding = Utf8,
        };
        foreach (var word in CommandWords.Skip(1))
        {
            info.ArgumentList.Add(word);
        }

        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment.Remove("QMP_SOCKET");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {string.Join(' ', CommandWords)}.");
        var aqmp = new AqmpProcess(process, [.. arguments], limit);
        s_live[aqmp] = 0;
        return aqmp;
    }

    /// <summary>Waits for the shell's "Connected to QEMU ..." line.</summary>
    public Task<string> WaitForConnectedAsync() => WaitForStdoutLineAsync(l => l.StartsWith("Connected to QEMU", StringComparison.Ordinal), "'Connected to QEMU ...'");

    /// <summary>Runs <c>aqmp ARGUMENTS</c> with empty stdin until it exits.</summary>
    public static Task<AqmpResult> RunAsync(params string[] arguments) => RunAsync(arguments, input: null);

    /// <summary>Runs <c>aqmp ARGUMENTS</c>, writes <paramref name="input"/> to its stdin, closes stdin and waits for the exit.</summary>
    public static async Task<AqmpResult> RunAsync(IReadOnlyList<string> arguments, string? input, TimeSpan? limit = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        await using var aqmp = Start(arguments, limit ?? DefaultLimit, environment);
        if (input is not null)
        {
            await aqmp.WriteInputAsync(input);
        }

        aqmp.CloseInput();
        return await aqmp.WaitForExitAsync();
    }

    /// <summary>Kills every process still running (a safety net run after all tests); returns how many there were.</summary>
    public static int KillAll()
    {
        var killed = 0;
        foreach (var aqmp in s_live.Keys)
        {
            if (!aqmp.HasExited)
            {
                aqmp.Kill();
                killed++;
            }
        }

        return killed;
    }

    /// <summary>Writes to stdin and flushes; a tool that already closed its stdin is not an error here (its exit tells).</summary>
    public async Task WriteInputAsync(string text)
    {
        try
        {
            await _process.StandardInput.WriteAsync(text);
            await _process.StandardInput.FlushAsync();
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Closes stdin: the tool reads end of input.</summary>
    public void CloseInput()
    {
        try
        {
            _process.StandardInput.Close();
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Waits (bounded) until stdout has a complete line matching <paramref name="predicate"/>, and returns it.</summary>
    public async Task<string> WaitForStdoutLineAsync(Func<string, bool> predicate, string what, TimeSpan? within = null)
    {
        var deadline = Stopwatch.StartNew();
        var limit = within ?? TestTimeouts.Default;
        while (true)
        {
            var exited = HasExited && _pumps.IsCompleted;
            var line = AqmpResult.SplitLines(_stdout.Text, completeOnly: !exited).FirstOrDefault(predicate);
            if (line is not null)
            {
                return line;
            }

            if (exited)
            {
                Assert.Fail($"{this} exited (code {_process.ExitCode}) without printing {what}.{Describe()}");
            }

            if (deadline.Elapsed > limit)
            {
                Assert.Fail($"{this} did not print {what} within {limit}.{Describe()}");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Waits (bounded) for the process to exit and returns what it left. Fails the test when the
    /// process had to be killed at its time limit or does not exit within the wait's bound (it is
    /// then killed).
    /// </summary>
    public async Task<AqmpResult> WaitForExitAsync(TimeSpan? within = null)
    {
        var bound = within ?? WaitLimit;
        try
        {
            await _process.WaitForExitAsync().WaitAsync(bound);
        }
        catch (TimeoutException)
        {
            Kill();
            await _process.WaitForExitAsync().WaitAsync(WaitLimit);
            await DrainAsync();
            Assert.Fail($"{this} did not exit within {bound}; killed.{Describe()}");
        }

        await DrainAsync();
        if (Volatile.Read(ref _timedOut) != 0)
        {
            Assert.Fail($"{this} was still running at its time limit of {_limit}; killed.{Describe()}");
        }

        return new AqmpResult(Arguments, _process.ExitCode, _stdout.Text, _stderr.Text);
    }

    /// <summary>Sends a signal with <c>kill -SIGNAL PID</c> (e.g. <c>TERM</c>, <c>INT</c>).</summary>
    public async Task SignalAsync(string signal)
    {
        var info = new ProcessStartInfo("kill", [$"-{signal}", Id.ToString(CultureInfo.InvariantCulture)])
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        };
        using var kill = Process.Start(info) ?? throw new InvalidOperationException($"Could not run 'kill -{signal}'.");
        var error = kill.StandardError.ReadToEndAsync();
        await kill.WaitForExitAsync().WaitAsync(TestTimeouts.Default);
        Assert.That(kill.ExitCode, Is.Zero, $"kill -{signal} {Id} failed: {await error}");
    }

    /// <summary>Kills the process if it still runs and waits for it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _killOnExpiry.DisposeAsync();
        try
        {
            if (!HasExited)
            {
                Kill();
                await _process.WaitForExitAsync().WaitAsync(WaitLimit);
            }

            await DrainAsync();
        }
        finally
        {
            s_live.TryRemove(this, out _);
            _process.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"'aqmp {string.Join(' ', Arguments)}' (pid {Id})";

    /// <summary>Both outputs so far, for failure messages.</summary>
    public string Describe() => AqmpResult.DescribeOutputs(Stdout, Stderr);

    private static async Task PumpAsync(StreamReader reader, Capture capture)
    {
        var buffer = new char[4096];
        try
        {
            while (true)
            {
                var read = await reader.ReadAsync(buffer.AsMemory());
                if (read == 0)
                {
                    return;
                }

                capture.Append(buffer.AsSpan(0, read));
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // The process is gone: what was read is all there is.
        }
    }

    private static string FindHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } fromSdk && File.Exists(fromSdk))
        {
            return fromSdk;
        }

        if (Environment.ProcessPath is { } current && Path.GetFileNameWithoutExtension(current) == "dotnet")
        {
            return current;
        }

        // <root>/shared/Microsoft.NETCore.App/<version>/ -> <root>/dotnet
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var candidate = Path.Combine(root, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
        return File.Exists(candidate) ? candidate : "dotnet";
    }

    /// <summary>
    /// The executable <c>AQMP_TOOL</c> names; else aqmp.dll next to the test assembly (the project reference copies it there), else in the
    /// referenced project's own output directory for the same configuration and framework.
    /// </summary>
    private static string FindTool()
    {
        if (Environment.GetEnvironmentVariable(ToolVariable) is { Length: > 0 } native)
        {
            return File.Exists(native) ? Path.GetFullPath(native) : throw new FileNotFoundException($"{ToolVariable}={native}: no such file.");
        }

        const string Tool = "aqmp.dll";
        var baseDirectory = AppContext.BaseDirectory;
        var beside = Path.Combine(baseDirectory, Tool);
        if (File.Exists(beside) && File.Exists(Path.Combine(baseDirectory, "aqmp.runtimeconfig.json")))
        {
            return beside;
        }

        var configuration = typeof(AqmpProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var framework = new DirectoryInfo(baseDirectory).Name;
        var searched = new List<string> { beside };
        for (var directory = new DirectoryInfo(baseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "src", "Aqmp.Pipelines.Cli", "bin", configuration, framework, Tool);
            if (File.Exists(candidate))
            {
                return candidate;
            }

            searched.Add(candidate);
        }

        throw new FileNotFoundException($"The aqmp tool ({Tool} with its runtimeconfig) was not found; looked at: {string.Join(", ", searched)}. Build the test project (it references src/Aqmp.Pipelines.Cli).");
    }

    private void Expire()
    {
        if (!HasExited)
        {
            Interlocked.Exchange(ref _timedOut, 1);
            Kill();
        }
    }

    private void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Exiting right now.
        }
    }

    private async Task DrainAsync()
    {
        try
        {
            await _pumps.WaitAsync(WaitLimit);
        }
        catch (TimeoutException)
        {
            // A grandchild holding the pipes would cause this; the tool has none. Report what we have.
        }
    }

    private sealed class Capture
    {
        private readonly Lock _gate = new();
        private readonly StringBuilder _text = new();

        public string Text
        {
            get
            {
                lock (_gate)
                {
                    return _text.ToString();
                }
            }
        }

        public void Append(ReadOnlySpan<char> chars)
        {
            lock (_gate)
            {
                _text.Append(chars);
            }
        }
    }
}

/// <summary>What a finished <c>aqmp</c> process left: its exit code and both outputs.</summary>
internal sealed record AqmpResult(IReadOnlyList<string> Arguments, int ExitCode, string Stdout, string Stderr)
{
    /// <summary>stdout's lines, without line ends.</summary>
    public IReadOnlyList<string> StdoutLines => SplitLines(Stdout, completeOnly: false);

    /// <summary>stderr's lines, without line ends.</summary>
    public IReadOnlyList<string> StderrLines => SplitLines(Stderr, completeOnly: false);

    /// <summary>Splits text into lines; with <paramref name="completeOnly"/>, a last line without its line end is left out.</summary>
    public static IReadOnlyList<string> SplitLines(string text, bool completeOnly)
    {
        var lines = text.Split('\n').Select(line => line.TrimEnd('\r')).ToList();

        // The part after the last '\n': empty when the text ends with a line end, else an unfinished line.
        if (completeOnly || lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }

        return lines;
    }

    /// <summary>Both outputs, for failure messages.</summary>
    public static string DescribeOutputs(string stdout, string stderr)
        => $"{Environment.NewLine}--- stdout ---{Environment.NewLine}{stdout}{Environment.NewLine}--- stderr ---{Environment.NewLine}{stderr}{Environment.NewLine}--- end ---";

    /// <inheritdoc />
    public override string ToString() => $"'aqmp {string.Join(' ', Arguments)}' exited with {ExitCode}.{DescribeOutputs(Stdout, Stderr)}";
}
