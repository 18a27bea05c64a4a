using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Qmp.Tests.Integration;

/// <summary>
/// The simulator against a real QEMU, byte for byte: each script (a list of writes) is sent over a
/// Unix socket to a fresh QEMU and to a fresh simulator, and what each answers (greeting included)
/// and whether it closed the connection must be the same, once event timestamps are set aside.
/// The simulator announces the QEMU's own version and package. After each script the simulator
/// must serve the next client, and once both clients have gone, hold no more descriptors and
/// retain no more memory than before the script. Skipped when QEMU is not on PATH, unless <c>AQMP_REQUIRE_QEMU=1</c>.
/// </summary>
[TestFixture]
[Category("Qemu")]
[NonParallelizable]
public sealed partial class SimulatorDifferentialTests
{
    private const string Negotiate = """{"execute":"qmp_capabilities"}""";

    /// <summary>How long the output must stay quiet after a write before the next one.</summary>
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(150);

    /// <summary>How long the output must stay quiet after the last write.</summary>
    private static readonly TimeSpan FinalQuiet = TimeSpan.FromMilliseconds(400);

    private static readonly (string Name, string[] Writes)[] TextScripts =
    [
        ("A command without a newline is answered at once", [Negotiate]),
        ("Two commands with nothing between them are both answered", [Negotiate + """{"execute":"query-status"}"""]),
        ("A command split across many writes is answered when its closing brace arrives", ["""{"exe""", """cute":"qmp_cap""", "abilities\"", "}"]),
        ("Blank lines, tabs and CRLF between commands are ignored", ["\r\n\r\n  \t" + Negotiate + "\r\n\r\n   \t", """{"execute":"query-version"}"""]),
        ("A missing value is a parse error and the next command is answered", ["{\"execute\": }\n", Negotiate + "\n"]),
        ("An array is not a JSON object", ["[1, 2]\n", Negotiate]),
        ("A number followed by a newline is not a JSON object", ["1\n", Negotiate]),
        ("A number ended by the next command's brace is not a JSON object", ["1", Negotiate]),
        ("A string is not a JSON object", ["\"str\"\n", Negotiate]),
        ("A single-quoted string is a string", ["'x' ", Negotiate]),
        ("Literals are not JSON objects", ["true false null ", Negotiate]),
        ("An unknown member is unexpected", ["{\"foo\": 1}\n", Negotiate]),
        ("The first unexpected member in QEMU's dictionary order is named", ["""{"b":1,"a":2}""", Negotiate]),
        ("A reply sent to the server is unexpected input", ["""{"return":{}}""", Negotiate]),
        ("Duplicate keys are a parse error", ["{\"execute\":\"qmp_capabilities\",\"execute\":\"x\"}\n", Negotiate]),
        ("A stray closing brace expects a value", ["}\n", Negotiate]),
        ("A stray closing brace on the command's line expects a value", ["}" + Negotiate]),
        ("A stray comma and colon each expect a value", [",:", Negotiate]),
        ("An unknown keyword is invalid", ["abc ", Negotiate]),
        ("A number running into letters is a number then a keyword", ["12ab ", Negotiate]),
        ("A leading zero is stray", ["00 ", Negotiate]),
        ("A fraction without digits is stray", ["1.x ", Negotiate]),
        ("A minus before a brace is stray and recovery stops at the brace", ["-" + Negotiate]),
        ("An upper-case letter is stray", ["X" + Negotiate]),
        ("A missing colon is a parse error and the command after it on the same line is answered", ["{\"execute\" 1}" + Negotiate]),
        ("A missing comma is a parse error", ["""{"execute":"qmp_capabilities" "id":1}""", Negotiate]),
        ("A trailing comma in an object expects a value", ["""{"execute":"qmp_capabilities",}""", Negotiate]),
        ("A trailing comma in an array expects a value", ["""{"execute":"qmp_capabilities","id":[1,]}""", Negotiate]),
        ("A number as a key is not a string", ["{1:2}", Negotiate]),
        ("Mismatched brackets are a parse error", ["""{"a":[1}]""", Negotiate]),
        ("Brackets closing more than they open end the value early", ["{{]", Negotiate]),
        ("An empty object lacks execute", ["{}", Negotiate]),
        ("A numeric execute must be a string", ["""{"execute":1}""", Negotiate]),
        ("An id is echoed before the error", ["""{"id":7}""", Negotiate]),
        ("Arguments must be an object", ["""{"execute":"qmp_capabilities","arguments":[]}""", Negotiate]),
        ("exec-oob is unexpected before negotiation", ["""{"exec-oob":"qmp_capabilities"}""", Negotiate]),
        ("A command before negotiation is refused with its id", ["""{"id":1,"execute":"query-status"}""", Negotiate]),
        ("Single-quoted strings may hold braces and double quotes", ["{'execute':'qmp_capabilities', 'id': 'a}\"b'}"]),
        ("Escapes are decoded and non-ASCII is written as upper-case escapes", ["{\"execute\":\"qmp_capabilities\",\"id\":\"\\u00e9\u00e9/\\/\\ud83d\\ude00\\u007f\\u0000\"}"]),
        ("An invalid escape is a parse error", ["""{"execute":"qmp_capabilities","id":"\q"}"""]),
        ("A bad hex escape is not a valid Unicode character", ["""{"execute":"qmp_capabilities","id":"\u12g4"}""", Negotiate]),
        ("A lone surrogate is not a valid Unicode character", ["""{"execute":"qmp_capabilities","id":"\ud800"}""", Negotiate]),
        ("A noncharacter is not a valid Unicode character", ["""{"execute":"qmp_capabilities","id":"\uffff"}""", Negotiate]),
        ("Integers beyond 64 bits become doubles", ["""{"execute":"qmp_capabilities","id":[123456789012345678901234567890, -9223372036854775809, 18446744073709551615, -0]}"""]),
        ("Doubles are written with 17 significant digits", ["""{"execute":"qmp_capabilities","id":[1.5, 1e3, -0.0, 0.1, 1E-7, 2.5e+10, 100.0, 1e300]}"""]),
        ("Nested ids are written in QEMU's dictionary order", ["""{"execute":"qmp_capabilities","id":{"b":1,"a":[true,false,null],"c":{}, "status":[], "singlestep":{}}}"""]),
        ("A tab inside a string is stray and the rest is skipped up to the closing brace", ["{\"execute\":\"qmp_capabilities\",\"id\":\"a\tb\"}", Negotiate]),
        ("A control byte is stray and recovery skips letters, spaces and quotes", ["\u0001 abc \"x def {\"execute\":\"qmp_capabilities\"}"]),
        ("Recovery after a stray byte ends at a newline", ["\u0001 abc\n\"str\" "]),
        ("Recovery ends at a colon and at a comma, each of which expects a value", ["\u0001\"a\":\"b\"\u0001x,1 ", Negotiate]),
        ("Recovery ends at a closing bracket, which expects a value", ["\u0001abc def]x", Negotiate]),
        ("Capabilities negotiation refuses an unknown capability", ["""{"execute":"qmp_capabilities","arguments":{"enable":["x"]}}""", Negotiate]),
        ("Capabilities negotiation refuses a non-string capability", ["""{"execute":"qmp_capabilities","arguments":{"enable":[1]}}""", Negotiate]),
        ("Capabilities negotiation refuses a non-array enable", ["""{"execute":"qmp_capabilities","arguments":{"enable":"oob"}}""", Negotiate]),
        ("Capabilities negotiation refuses an unknown argument", ["""{"execute":"qmp_capabilities","arguments":{"foo":1}}""", Negotiate]),
        ("With oob enabled, exec-oob of a command that does not support it is refused", ["""{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}""", """{"exec-oob":"query-status"}"""]),
        ("Commands after negotiation: unknown, stop with its event, a second negotiation, an array id", [Negotiate, """{"execute":"nope"}{"execute":"stop"}{"execute":"qmp_capabilities"}{"execute":"query-status","id":[1,"a"]}{"execute":"cont"}"""]),
        ("Quit emits SHUTDOWN, answers and closes", [Negotiate, """{"execute":"quit"}"""]),
        ("The machine's queries answer as qemu-system-x86_64 -M none", [Negotiate, """{"execute":"query-status"}{"execute":"query-version"}{"execute":"query-name"}{"execute":"query-uuid"}{"execute":"query-kvm"}{"execute":"query-yank"}"""]),
        ("system_reset emits RESET before its reply and the machine keeps running", [Negotiate, """{"execute":"system_reset","id":1}{"execute":"query-status","id":2}"""]),
        ("system_reset while stopped leaves prelaunch, which stop keeps and cont leaves", [Negotiate, """{"execute":"stop"}{"execute":"system_reset"}{"execute":"stop"}{"execute":"query-status"}{"execute":"cont"}{"execute":"query-status"}"""]),
        ("system_powerdown emits POWERDOWN before its reply and the machine keeps running", [Negotiate, """{"execute":"system_powerdown"}{"execute":"query-status"}"""]),
        ("query-commands lists every command of the schema in QEMU's order", [Negotiate, """{"execute":"query-commands"}"""]),
        ("query-qmp-schema returns QEMU's whole schema", [Negotiate, """{"execute":"query-qmp-schema","id":"s"}"""]),
        ("With oob enabled, exec-oob runs a command the schema allows out of band and checks its arguments", ["""{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}""", """{"exec-oob":"query-yank","id":1}{"exec-oob":"query-yank","arguments":{"a":1}}{"exec-oob":"nope"}"""]),
        ("With oob enabled, in-band commands and input errors are answered in the order they arrived", ["""{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}""", """{"execute":"query-status","id":1}{"execute": }{"execute":"nope","id":3}{"execute":"stop","id":4}{"execute":"query-status","id":5}{"execute":"cont","id":6}{"execute":"human-monitor-command","arguments":{"command-line":"info status"},"id":7}"""]),
        ("With oob enabled, exec-oob without an id is answered", ["""{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}""", """{"exec-oob":"query-yank"}"""]),
        ("With oob enabled, quit emits SHUTDOWN, answers and closes", ["""{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}""", """{"execute":"quit","id":"q"}"""]),
        ("Without oob, exec-oob after negotiation is unexpected", [Negotiate, """{"exec-oob":"query-yank","id":1}{"execute":"query-status","id":2}"""]),
        ("qmp_capabilities after negotiation checks its arguments before refusing", [Negotiate, """{"execute":"qmp_capabilities","arguments":{"x":1}}{"execute":"qmp_capabilities","arguments":{"enable":["x"]}}{"execute":"qmp_capabilities","arguments":{"enable":"oob"}}"""]),
        ("An unexpected argument to a simulated command is refused and the command does not run", [Negotiate, """{"execute":"stop","arguments":{"x":1}}{"execute":"query-status","arguments":{"foo":1}}{"execute":"system_reset","arguments":{"a":null}}{"execute":"query-status"}"""]),
        ("Arguments of quit are checked before it quits", [Negotiate, """{"execute":"quit","arguments":{"a":1}}{"execute":"query-kvm","arguments":{"a":1}}"""]),
        ("A missing or mistyped argument of human-monitor-command is refused", [Negotiate, """{"execute":"human-monitor-command"}{"execute":"human-monitor-command","arguments":{}}{"execute":"human-monitor-command","arguments":{"command-line":1}}{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":"a"}}{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":null}}{"execute":"human-monitor-command","arguments":{"command-line":"info status","extra":true}}"""]),
        ("A cpu-index names no CPU of a machine without CPUs", [Negotiate, """{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":0}}{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":-1}}"""]),
        ("Scalar argument errors of commands without simulated behaviour", [Negotiate, """{"execute":"balloon"}{"execute":"balloon","arguments":{}}{"execute":"balloon","arguments":{"value":"1"}}{"execute":"balloon","arguments":{"value":1.5}}{"execute":"balloon","arguments":{"value":1e3}}{"execute":"balloon","arguments":{"value":true}}{"execute":"balloon","arguments":{"value":null}}{"execute":"balloon","arguments":{"value":{}}}{"execute":"balloon","arguments":{"value":[]}}{"execute":"balloon","arguments":{"value":18446744073709551615}}"""]),
        ("Member errors are found in schema order and unexpected members last", [Negotiate, """{"execute":"set_link","arguments":{"name":1,"up":true}}{"execute":"set_link","arguments":{"name":"a","up":1}}{"execute":"set_link","arguments":{"up":1}}{"execute":"set_link","arguments":{"zz":1,"up":"x"}}{"execute":"set_link","arguments":{"name":"a","up":true,"z":1}}{"execute":"eject","arguments":{"id":null}}{"execute":"eject","arguments":{"force":"yes"}}{"execute":"memsave","arguments":{"val":1}}"""]),
        ("Nested argument errors name the path, and enum errors the member alone", [Negotiate, """{"execute":"send-key","arguments":{"keys":{}}}{"execute":"send-key","arguments":{"keys":[1]}}{"execute":"send-key","arguments":{"keys":[{"type":"number","data":"x"}]}}{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"nokey"}]}}{"execute":"send-key","arguments":{"keys":[{"type":"foo","data":"x"}]}}{"execute":"send-key","arguments":{"keys":[{"data":"x"}]}}{"execute":"send-key","arguments":{"keys":[{"type":"qcode"}]}}{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"a","q":1}]}}{"execute":"send-key","arguments":{"keys":[{"type":1,"data":"a"}]}}{"execute":"screendump","arguments":{"filename":"f","format":"gif"}}{"execute":"screendump","arguments":{"filename":"f","format":1}}{"execute":"query-cpu-model-expansion","arguments":{"type":"x","model":{"name":"a"}}}{"execute":"query-cpu-model-expansion","arguments":{"type":"full","model":{"name":1}}}{"execute":"query-cpu-model-expansion","arguments":{"type":"full","model":"x"}}"""]),
        ("Flat union arguments: the tag is checked, then its variant's members", [Negotiate, """{"execute":"blockdev-add","arguments":{}}{"execute":"blockdev-add","arguments":{"driver":"nope"}}{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n","zz":1}}{"execute":"blockdev-add","arguments":{"driver":"file","node-name":"n"}}{"execute":"blockdev-add","arguments":{"driver":"file","node-name":"n","filename":7}}"""]),
        ("A value no branch of an alternate takes names the alternate", [Negotiate, """{"execute":"blockdev-add","arguments":{"driver":"qcow2","node-name":"n","file":1}}{"execute":"migrate-set-parameters","arguments":{"tls-creds":1}}{"execute":"block-dirty-bitmap-merge","arguments":{"node":"a","target":"b","bitmaps":[1]}}{"execute":"blockdev-add","arguments":{"driver":"qcow2","node-name":"n","file":"x","backing":1}}{"execute":"blockdev-add","arguments":{"driver":"qcow2","node-name":"n","file":"x","overlap-check":1}}{"execute":"blockdev-add","arguments":{"driver":"qcow2","node-name":"n","file":{"driver":"nope"}}}"""]),
        ("HMP help and ? print QEMU's help", [Negotiate, """{"execute":"human-monitor-command","arguments":{"command-line":"help"}}{"execute":"human-monitor-command","arguments":{"command-line":"?"}}"""]),
        ("HMP help on one command, an info subcommand, or something unknown", [Negotiate, """{"execute":"human-monitor-command","arguments":{"command-line":"help help help"}}{"execute":"human-monitor-command","arguments":{"command-line":"help s"}}{"execute":"human-monitor-command","arguments":{"command-line":"? cont"}}{"execute":"human-monitor-command","arguments":{"command-line":"help drive_backup"}}{"execute":"human-monitor-command","arguments":{"command-line":"help drive_add"}}{"execute":"human-monitor-command","arguments":{"command-line":"help  info"}}{"execute":"human-monitor-command","arguments":{"command-line":"help info status x"}}{"execute":"human-monitor-command","arguments":{"command-line":"help info nonsense"}}{"execute":"human-monitor-command","arguments":{"command-line":"help nonsense"}}"""]),
        ("HMP info lists its subcommands and answers status, version, kvm, name and uuid", [Negotiate, """{"execute":"human-monitor-command","arguments":{"command-line":"info"}}{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}{"execute":"human-monitor-command","arguments":{"command-line":"info version"}}{"execute":"human-monitor-command","arguments":{"command-line":"info kvm"}}{"execute":"human-monitor-command","arguments":{"command-line":"info name"}}{"execute":"human-monitor-command","arguments":{"command-line":"info uuid"}}{"execute":"human-monitor-command","arguments":{"command-line":"\tinfo\tstatus\n"}}"""]),
        ("HMP unknown commands, empty lines and extra words get QEMU's text", [Negotiate, """{"execute":"human-monitor-command","arguments":{"command-line":"nonsense"}}{"execute":"human-monitor-command","arguments":{"command-line":""}}{"execute":"human-monitor-command","arguments":{"command-line":"   "}}{"execute":"human-monitor-command","arguments":{"command-line":"INFO STATUS"}}{"execute":"human-monitor-command","arguments":{"command-line":"info nonsense"}}{"execute":"human-monitor-command","arguments":{"command-line":"info status extra"}}{"execute":"human-monitor-command","arguments":{"command-line":" info  status x"}}{"execute":"human-monitor-command","arguments":{"command-line":"info version x"}}{"execute":"human-monitor-command","arguments":{"command-line":"  stop  now"}}{"execute":"human-monitor-command","arguments":{"command-line":"s now"}}{"execute":"human-monitor-command","arguments":{"command-line":"cont x"}}{"execute":"query-status"}"""]),
        ("HMP stop and cont move the machine with their events, and info status follows", [Negotiate, """{"execute":"human-monitor-command","arguments":{"command-line":"stop"}}{"execute":"human-monitor-command","arguments":{"command-line":"s"}}{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}{"execute":"system_reset"}{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}{"execute":"human-monitor-command","arguments":{"command-line":"c"}}{"execute":"human-monitor-command","arguments":{"command-line":"cont"}}{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}"""]),
    ];

    private static readonly (string Name, byte[][] Writes)[] ByteScripts =
    [
        ("Invalid UTF-8 inside a string is stray with the string so far, and the closing brace expects a value", [[.. "{\"execute\":\""u8, 0xFF, .. "\"}\n"u8], Bytes(Negotiate)]),
        ("An FF byte between values is stray and a brace ends the recovery at once", [[0xFF, .. Bytes(Negotiate)]]),
        ("A NUL byte is stray and prints as nothing", [[0x00, .. Bytes(Negotiate)]]),
        ("A NUL byte inside a string cuts the stray text there", [[.. "{\"execute\":\"qmp_capab"u8, 0x00, .. "ilities\"}"u8], Bytes(Negotiate)]),
        ("A truncated UTF-8 sequence in a string is invalid", [[.. "{\"execute\":\"qmp_capabilities\",\"id\":\""u8, 0xC3, (byte)'(', .. "\"}"u8], Bytes(Negotiate)]),
        ("Overlong UTF-8 in a string is invalid", [[.. "{\"execute\":\"qmp_capabilities\",\"id\":\""u8, 0xC0, 0x80, 0xE0, 0x80, 0x80, .. "\"}"u8], Bytes(Negotiate)]),
        ("Nesting of 1024 brackets parses", [[.. Repeat((byte)'[', 1024), .. Repeat((byte)']', 1024)], Bytes(Negotiate)]),
        ("Nesting beyond 1024 brackets is refused and each closing bracket after it expects a value", [[.. Repeat((byte)'[', 1025), .. Repeat((byte)']', 3)], Bytes(Negotiate)]),
        ("Nesting beyond 1024 brackets is refused at once", [Repeat((byte)'[', 1025), Bytes(Negotiate)]),
    ];

    private QemuProcess? _qemu;
    private QmpSimulator? _simulator;
    private string? _simulatorPath;
    private QmpVersion? _qemuVersion;

    /// <summary>The scripts also run with every byte sent as a write of its own (the reads then split anywhere).</summary>
    private static readonly string[] SplitAtEveryByte =
    [
        "Two commands with nothing between them are both answered",
        "Blank lines, tabs and CRLF between commands are ignored",
        "A missing value is a parse error and the next command is answered",
        "A number ended by the next command's brace is not a JSON object",
        "Duplicate keys are a parse error",
        "A control byte is stray and recovery skips letters, spaces and quotes",
        "Single-quoted strings may hold braces and double quotes",
        "Escapes are decoded and non-ASCII is written as upper-case escapes",
        "Commands after negotiation: unknown, stop with its event, a second negotiation, an array id",
        "With oob enabled, in-band commands and input errors are answered in the order they arrived",
        "Invalid UTF-8 inside a string is stray with the string so far, and the closing brace expects a value",
        "A truncated UTF-8 sequence in a string is invalid",
    ];

    private static IEnumerable<TestCaseData> Scripts()
    {
        var all = TextScripts.Select(s => (s.Name, Writes: s.Writes.Select(Bytes).ToArray())).Concat(ByteScripts).ToList();
        var split = SplitAtEveryByte.Select(name => all.Single(s => s.Name == name));
        return all.Select(s => new TestCaseData(s.Writes, false).SetName(TestName(s.Name)))
            .Concat(split.Select(s => new TestCaseData(s.Writes, true).SetName(TestName(s.Name + " split at every byte"))));

        static string TestName(string name) => name.Replace(' ', '_').Replace(",", "", StringComparison.Ordinal);
    }

    /// <summary>
    /// Serves one client every kind of large reply once, so that what the process keeps after
    /// first use (the runtime's socket engine, the shared array pool's buckets) is in place before
    /// the first script's baseline: the bounds below are about what each client leaves behind.
    /// </summary>
    [OneTimeSetUp]
    public async Task WarmUpAsync()
    {
        // QEMU's version, which the simulators announce, so that both run a script at the same time.
        await using (var qemu = await QemuProcess.StartAsync())
        {
            var (greeting, _) = await RunAsync(qemu.SocketPath, []);
            _qemuVersion = QmpMessage.Parse(Encoding.UTF8.GetBytes(greeting[..greeting.IndexOf('\n', StringComparison.Ordinal)])).ToGreeting().Version;
        }

        var path = Path.Combine(Path.GetTempPath(), $"aqmp-sim-{Guid.NewGuid():N}.sock");
        await using var simulator = new QmpSimulator();
        await simulator.StartAsync("unix:" + path);
        await RunAsync(path, [Bytes(Negotiate + """{"execute":"query-qmp-schema"}{"execute":"query-commands"}{"execute":"human-monitor-command","arguments":{"command-line":"help"}}""")]);
        await simulator.StopAsync();
    }

    [SetUp]
    public async Task StartAsync()
    {
        _qemu = await QemuProcess.StartAsync();
    }

    [TearDown]
    public async Task StopAsync()
    {
        if (_simulator is { } simulator)
        {
            await simulator.DisposeAsync();
        }

        if (_qemu is { } qemu)
        {
            await qemu.DisposeAsync();
        }

        if (_simulatorPath is { } path)
        {
            File.Delete(path);
        }

        _simulator = null;
        _qemu = null;
        _simulatorPath = null;
    }

    [TestCaseSource(nameof(Scripts))]
    public async Task The_simulator_answers_as_QEMU(byte[][] writes, bool splitAtEveryByte)
    {
        var version = _qemuVersion!;
        await TestContext.Out.WriteLineAsync($"QEMU {version.Major}.{version.Minor}.{version.Micro} ({version.Package})");
        _simulatorPath = Path.Combine(Path.GetTempPath(), $"aqmp-sim-{Guid.NewGuid():N}.sock");
        _simulator = new QmpSimulator(new QmpSimulatorOptions { Version = version, StopOnQuit = false });
        await _simulator.StartAsync("unix:" + _simulatorPath);
        _ = QemuSchema.Qemu72;
        var descriptorsBefore = OpenDescriptors();
        var liveBefore = GC.GetTotalMemory(forceFullCollection: true);

        // The two peers are independent: the script runs against both at once.
        var qemuRun = RunAsync(_qemu!.SocketPath, writes, splitAtEveryByte);
        var simulatorRun = RunAsync(_simulatorPath, writes, splitAtEveryByte);
        var (qemuOutput, qemuClosed) = await qemuRun;
        var (simulatorOutput, simulatorClosed) = await simulatorRun;

        // A whole schema is 200 KB: the log keeps its start (the assertion below reports a mismatch).
        const int LoggedCharacters = 4000;
        var logged = qemuOutput.Length <= LoggedCharacters ? qemuOutput : $"{qemuOutput[..LoggedCharacters]}… ({qemuOutput.Length:N0} characters in all)";
        await TestContext.Out.WriteLineAsync($"QEMU:{Environment.NewLine}{logged}");
        Assert.Multiple(() =>
        {
            Assert.That(Normalize(simulatorOutput), Is.EqualTo(Normalize(qemuOutput)), "what the simulator answered");
            Assert.That(simulatorClosed, Is.EqualTo(qemuClosed), "whether the connection was closed");
        });

        var (next, _) = await RunAsync(_simulatorPath, [Bytes(Negotiate)]);
        Assert.That(next, Does.EndWith("{\"return\": {}}\r\n"), "the next client is served");

        // Both clients have gone: the simulator holds no descriptor and retains no memory for them.
        var descriptorsAfter = await DescriptorsSettledAsync(descriptorsBefore);
        var retained = GC.GetTotalMemory(forceFullCollection: true) - liveBefore;
        await TestContext.Out.WriteLineAsync($"descriptors {descriptorsBefore} -> {descriptorsAfter}; live heap {retained / 1024.0:+0.0;-0.0} KiB");
        Assert.Multiple(() =>
        {
            Assert.That(descriptorsAfter, Is.LessThanOrEqualTo(descriptorsBefore), "descriptors open once both clients have gone");
            Assert.That(retained, Is.LessThan(SegmentPoolBound + (512 * 1024)), "bytes the simulator retains once both clients have gone (its segment pool may keep up to its bound)");
        });
    }

    /// <summary>The most a simulator's segment pool keeps for reuse with the default session options.</summary>
    private static long SegmentPoolBound
    {
        get
        {
            var options = PipeProtocolOptions.Default;
            return ((options.SendPauseThreshold / options.MinimumSegmentSize) + 16) * options.MinimumSegmentSize;
        }
    }

    private static int OpenDescriptors() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>The number of open descriptors once it is back to <paramref name="bound"/> or 3 s have passed.</summary>
    private static async Task<int> DescriptorsSettledAsync(int bound)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        var open = OpenDescriptors();
        while (open > bound && DateTime.UtcNow < deadline)
        {
            // The server side closes its socket after it has seen the client's end.
            await Task.Delay(20);
            open = OpenDescriptors();
        }

        return open;
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Repeat(byte value, int count) => Enumerable.Repeat(value, count).ToArray();

    private static string Normalize(string output) => Timestamp().Replace(output, "\"timestamp\": {\"seconds\": S, \"microseconds\": U}");

    /// <summary>
    /// Connects, reads the greeting, sends each write (byte by byte when <paramref name="splitAtEveryByte"/>)
    /// and reads until the peer is quiet or closes.
    /// </summary>
    private static async Task<(string Output, bool Closed)> RunAsync(string path, byte[][] writes, bool splitAtEveryByte = false)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        var output = new MemoryStream();
        var closed = await ReadUntilQuietAsync(socket, output, Quiet);
        for (var i = 0; i < writes.Length && !closed; i++)
        {
            try
            {
                if (splitAtEveryByte)
                {
                    for (var b = 0; b < writes[i].Length; b++)
                    {
                        await socket.SendAsync(writes[i].AsMemory(b, 1)).AsTask().Bounded();
                    }
                }
                else
                {
                    await socket.SendAsync(writes[i]).Bounded();
                }
            }
            catch (SocketException)
            {
                closed = true;
                break;
            }

            closed = await ReadUntilQuietAsync(socket, output, i == writes.Length - 1 ? FinalQuiet : Quiet);
        }

        return (Encoding.UTF8.GetString(output.ToArray()), closed);
    }

    private static async Task<bool> ReadUntilQuietAsync(Socket socket, MemoryStream output, TimeSpan quiet)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            using var timeout = new CancellationTokenSource(quiet);
            try
            {
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                if (read == 0)
                {
                    return true;
                }

                output.Write(buffer, 0, read);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
            catch (SocketException)
            {
                return true;
            }
        }
    }

    [GeneratedRegex("\"timestamp\": \\{\"seconds\": \\d+, \"microseconds\": \\d+\\}")]
    private static partial Regex Timestamp();
}
