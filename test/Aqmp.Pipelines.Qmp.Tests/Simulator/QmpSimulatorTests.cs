using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Qmp.Tests.Simulator;

/// <summary>
/// The QMP simulator on its own terms: listening, the greeting, the negotiation (seen raw, byte
/// for byte, where the client would hide it), the built-in and user commands, events, one client
/// at a time, quit, stop, and serving over in-memory pipes.
/// </summary>
public class QmpSimulatorTests
{
    // ---------------------------------------------------------------- listening

    [Test]
    public async Task StartAsync_on_a_Unix_path_returns_that_endpoint_serves_clients_and_removes_the_file_when_stopped()
    {
        var path = TempSocketPath();
        await using var simulator = new QmpSimulator();

        var bound = await simulator.StartAsync(new UnixDomainSocketEndPoint(path)).Bounded();

        Assert.That(bound, Is.InstanceOf<UnixDomainSocketEndPoint>());
        Assert.That(bound.ToString(), Is.EqualTo(path));
        Assert.That(simulator.LocalEndPoint, Is.SameAs(bound));
        Assert.That(File.Exists(path), Is.True, "the socket file exists while listening");
        await using (var client = new QmpClient())
        {
            await client.ConnectAsync("unix:" + path).Bounded();
            Assert.That((await client.ExecuteAsync("query-status").Bounded()).GetProperty("running").GetBoolean(), Is.True);
        }

        await simulator.StopAsync().Bounded();
        Assert.That(File.Exists(path), Is.False, "SocketListener removes a Unix socket file when disposed");
    }

    [Test]
    public async Task StartAsync_on_TCP_port_0_returns_the_port_actually_bound()
    {
        await using var simulator = new QmpSimulator();

        var bound = await simulator.StartAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        Assert.That(bound, Is.InstanceOf<IPEndPoint>());
        var ip = (IPEndPoint)bound;
        Assert.That(ip.Address, Is.EqualTo(IPAddress.Loopback));
        Assert.That(ip.Port, Is.Not.Zero);
        Assert.That(simulator.LocalEndPoint, Is.EqualTo(bound));
        await using var client = new QmpClient();
        await client.ConnectAsync(bound).Bounded();
        Assert.That((await client.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.EqualTo("running"));
    }

    [Test]
    public async Task StartAsync_accepts_an_address_as_text()
    {
        await using var simulator = new QmpSimulator();

        var bound = await simulator.StartAsync("127.0.0.1:0").Bounded();

        Assert.That(((IPEndPoint)bound).Port, Is.Not.Zero);
        await using var client = new QmpClient();
        await client.ConnectAsync($"127.0.0.1:{((IPEndPoint)bound).Port}").Bounded();
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task StartAsync_twice_raises_InvalidOperationException()
    {
        await using var fixture = await SimulatorFixture.StartAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() => fixture.Simulator.StartAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded());
    }

    // ---------------------------------------------------------------- greeting and negotiation

    [Test]
    public async Task The_greeting_announces_the_configured_version_and_capabilities()
    {
        var options = new QmpSimulatorOptions { Version = new QmpVersion(8, 1, 5, "test-package"), Capabilities = ["oob", "x-extra"] };
        await using var fixture = await SimulatorFixture.StartAsync(options);

        await using (var raw = await RawQmpPeer.ConnectAsync(fixture.Path))
        {
            var greeting = await raw.ReadAsync();
            var body = greeting.GetProperty("QMP");
            var qemu = body.GetProperty("version").GetProperty("qemu");
            Assert.That(qemu.GetProperty("major").GetInt32(), Is.EqualTo(8));
            Assert.That(qemu.GetProperty("minor").GetInt32(), Is.EqualTo(1));
            Assert.That(qemu.GetProperty("micro").GetInt32(), Is.EqualTo(5));
            Assert.That(body.GetProperty("version").GetProperty("package").GetString(), Is.EqualTo("test-package"));
            Assert.That(body.GetProperty("capabilities").EnumerateArray().Select(c => c.GetString()), Is.EqualTo(new[] { "oob", "x-extra" }));
        }

        await using var client = await fixture.ConnectAsync();
        Assert.That(client.Greeting, Is.Not.Null);
        Assert.That(client.Greeting!.Version, Is.EqualTo(options.Version));
        Assert.That(client.Greeting.Capabilities, Is.EqualTo(new[] { "oob", "x-extra" }));
    }

    [Test]
    public async Task The_default_greeting_announces_QEMU_7_2_offering_oob()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        Assert.That(client.Greeting!.Version, Is.EqualTo(QmpSimulatorOptions.Default.Version));
        Assert.That(client.Greeting.Version.Major, Is.EqualTo(7));
        Assert.That(client.Greeting.Capabilities, Is.EqualTo(new[] { QmpCapabilities.OutOfBand }));
    }

    [Test]
    public async Task EnableOutOfBand_is_negotiated_only_when_the_simulator_offers_oob()
    {
        var outOfBand = new QmpClientOptions { EnableOutOfBand = true };
        await using (var offering = await SimulatorFixture.StartAsync())
        {
            await using var client = await offering.ConnectAsync(outOfBand);
            Assert.That(client.OutOfBandEnabled, Is.True);
        }

        await using var silent = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { Capabilities = [] });
        await using var plain = await silent.ConnectAsync(outOfBand);
        Assert.That(plain.Greeting!.Capabilities, Is.Empty);
        Assert.That(plain.OutOfBandEnabled, Is.False);
    }

    [Test]
    public async Task Commands_before_qmp_capabilities_get_CommandNotFound()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var raw = await RawQmpPeer.ConnectAsync(fixture.Path);
        Assert.That((await raw.ReadAsync()).TryGetProperty("QMP", out _), Is.True);

        foreach (var (command, id) in new[] { ("query-status", 1), ("quit", 2), ("no-such-command", 3) })
        {
            var reply = await raw.ExecuteAsync(command, id);
            Assert.That(ErrorClass(reply), Is.EqualTo("CommandNotFound"), command);
            Assert.That(ErrorDescription(reply), Does.StartWith("Expecting capabilities negotiation"), command);
            Assert.That(reply.GetProperty("id").GetInt32(), Is.EqualTo(id));
        }

        Assert.That(fixture.Simulator.IsRunning, Is.True, "quit before negotiation must not run");
        var negotiated = await raw.ExecuteAsync("qmp_capabilities", 4);
        Assert.That(negotiated.GetProperty("return").ValueKind, Is.EqualTo(JsonValueKind.Object));
        Assert.That(negotiated.GetProperty("id").GetInt32(), Is.EqualTo(4));
        var status = await raw.ExecuteAsync("query-status", 5);
        Assert.That(status.GetProperty("return").GetProperty("status").GetString(), Is.EqualTo("running"));
    }

    [Test]
    public async Task Qmp_capabilities_a_second_time_is_an_error_and_the_session_goes_on()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using (var raw = await RawQmpPeer.ConnectAsync(fixture.Path))
        {
            await raw.ReadAsync();
            Assert.That((await raw.ExecuteAsync("qmp_capabilities", 1)).TryGetProperty("return", out _), Is.True);

            var again = await raw.ExecuteAsync("qmp_capabilities", 2);

            Assert.That(ErrorClass(again), Is.EqualTo("CommandNotFound"));
            Assert.That(ErrorDescription(again), Does.Contain("already complete"));
            Assert.That((await raw.ExecuteAsync("query-status", 3)).TryGetProperty("return", out _), Is.True);
        }

        // The same through the client.
        await using var client = await fixture.ConnectAsync();
        var error = await Assert.ThrowsAsync<QmpExecuteException>(() => client.ExecuteAsync("qmp_capabilities").Bounded());
        Assert.That(error!.ErrorClass, Is.EqualTo("CommandNotFound"));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task Qmp_capabilities_enabling_a_capability_not_offered_is_refused()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { Capabilities = [] });
        await using var raw = await RawQmpPeer.ConnectAsync(fixture.Path);
        await raw.ReadAsync();

        var refused = await raw.ExecuteAsync("qmp_capabilities", 1, """{"enable":["oob"]}""");

        Assert.That(ErrorClass(refused), Is.EqualTo("GenericError"));
        Assert.That(ErrorDescription(refused), Does.Contain("oob"));
        Assert.That(ErrorDescription(await raw.ExecuteAsync("query-status", 2)), Does.StartWith("Expecting capabilities negotiation"), "still not negotiated");
        Assert.That((await raw.ExecuteAsync("qmp_capabilities", 3)).TryGetProperty("return", out _), Is.True);
    }

    // ---------------------------------------------------------------- refused requests

    [Test]
    public async Task A_request_whose_execute_is_not_a_string_gets_QEMUs_GenericError_with_its_id_and_the_next_command_is_answered()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var raw = await NegotiatedRawQmpPeerAsync(fixture);

        await raw.SendAsync("""{"execute":5,"id":7}""");

        AssertJsonEqual(await raw.ReadAsync(), """{"error":{"class":"GenericError","desc":"QMP input member 'execute' must be a string"},"id":7}""");
        var status = await raw.ExecuteAsync("query-status", 8);
        Assert.That(status.GetProperty("return").GetProperty("status").GetString(), Is.EqualTo("running"));
        Assert.That(status.GetProperty("id").GetInt32(), Is.EqualTo(8));
    }

    [TestCase("""{"exec-oob":"query-status","execute":null,"id":2}""", "QMP input member 'exec-oob' is unexpected", "2", TestName = "A_request_with_exec_oob_without_oob_enabled_is_refused_naming_exec_oob_before_a_null_execute")]
    [TestCase("""{"exec-oob":"x","execute":5}""", "QMP input member 'exec-oob' is unexpected", null, TestName = "A_request_with_exec_oob_without_oob_enabled_and_a_numeric_execute_is_refused_without_an_id")]
    [TestCase("""{"execute":"query-status","exec-oob":"stop","id":"both"}""", "QMP input member 'exec-oob' is unexpected", "\"both\"", TestName = "A_request_with_both_execute_and_exec_oob_is_refused_naming_the_second")]
    [TestCase("""{"execute":"query-status","arguments":[1],"id":{"n":1}}""", "QMP input member 'arguments' must be an object", """{"n":1}""", TestName = "A_request_with_array_arguments_is_refused_keeping_an_object_id")]
    [TestCase("""{"execute":"query-status","id":3,"extra":true}""", "QMP input member 'extra' is unexpected", "3", TestName = "A_request_with_an_unknown_member_is_refused_naming_it")]
    [TestCase("""[{"execute":"query-status"}]""", "QMP input must be a JSON object", null, TestName = "A_request_that_is_a_JSON_array_is_refused_as_not_an_object")]
    public async Task A_request_QEMU_would_refuse_gets_its_GenericError_and_the_session_goes_on(string request, string description, string? id)
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var raw = await NegotiatedRawQmpPeerAsync(fixture);

        await raw.SendAsync(request);

        var idMember = id is null ? string.Empty : ",\"id\":" + id;
        AssertJsonEqual(await raw.ReadAsync(), $$"""{"error":{"class":"GenericError","desc":"{{description}}"}{{idMember}}}""");
        Assert.That((await raw.ExecuteAsync("query-status", 9)).TryGetProperty("return", out _), Is.True, "the session goes on");
    }

    [Test]
    public async Task A_refused_request_before_qmp_capabilities_gets_the_same_refusal_and_negotiation_still_works()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var raw = await RawQmpPeer.ConnectAsync(fixture.Path);
        await raw.ReadAsync();

        await raw.SendAsync("""{"execute":"qmp_capabilities","arguments":"oob","id":1}""");

        AssertJsonEqual(await raw.ReadAsync(), """{"error":{"class":"GenericError","desc":"QMP input member 'arguments' must be an object"},"id":1}""");
        Assert.That((await raw.ExecuteAsync("qmp_capabilities", 2)).TryGetProperty("return", out _), Is.True);
    }

    [TestCase("""{"error":{"class":"GenericError","desc":"QMP input member 'execute' must be a string"},"id":3}""", "error", TestName = "An_error_reply_sent_by_a_client_gets_QMP_input_member_error_is_unexpected_not_echoed_back")]
    [TestCase("""{"return":{},"id":3}""", "return", TestName = "A_return_sent_by_a_client_gets_QMP_input_member_return_is_unexpected")]
    public async Task A_message_from_a_client_that_is_no_command_gets_its_first_member_refused_as_QEMU_does(string message, string member)
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var raw = await NegotiatedRawQmpPeerAsync(fixture);

        await raw.SendAsync(message);

        AssertJsonEqual(await raw.ReadAsync(), $$"""{"error":{"class":"GenericError","desc":"QMP input member '{{member}}' is unexpected"},"id":3}""");
        Assert.That((await raw.ExecuteAsync("query-status", 4)).TryGetProperty("return", out _), Is.True);
    }

    [Test]
    public async Task Malformed_JSON_gets_QEMUs_parse_error_the_session_goes_on_and_the_simulator_serves_the_next_client()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using (var raw = await NegotiatedRawQmpPeerAsync(fixture))
        {
            await raw.SendAsync("""{"execute": , "id": 1}""");

            AssertJsonEqual(await raw.ReadAsync(), """{"error":{"class":"GenericError","desc":"JSON parse error, expecting value"}}""");
            Assert.That((await raw.ExecuteAsync("query-status", 3)).TryGetProperty("return", out _), Is.True, "the session goes on");
        }

        await using var next = await NegotiatedRawQmpPeerAsync(fixture);
        Assert.That((await next.ExecuteAsync("query-status", 2)).TryGetProperty("return", out _), Is.True);
    }

    [TestCase("""{"enable":"oob"}""", "Invalid parameter type for 'enable', expected: array", TestName = "Qmp_capabilities_enabling_a_string_instead_of_an_array_is_refused_and_the_session_goes_on")]
    [TestCase("""{"enable":["oob",1]}""", "Invalid parameter type for 'enable[1]', expected: string", TestName = "Qmp_capabilities_enabling_a_number_is_refused_naming_its_index_and_the_session_goes_on")]
    public async Task Qmp_capabilities_with_a_mistyped_enable_is_refused_and_the_session_goes_on(string arguments, string description)
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var raw = await RawQmpPeer.ConnectAsync(fixture.Path);
        await raw.ReadAsync();

        var refused = await raw.ExecuteAsync("qmp_capabilities", 1, arguments);

        Assert.That(ErrorClass(refused), Is.EqualTo("GenericError"));
        Assert.That(ErrorDescription(refused), Is.EqualTo(description));
        Assert.That((await raw.ExecuteAsync("qmp_capabilities", 2)).TryGetProperty("return", out _), Is.True);
    }

    // ---------------------------------------------------------------- built-in commands

    [Test]
    public async Task Query_version_reports_the_configured_version()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { Version = new QmpVersion(9, 0, 1, "pkg") });
        await using var client = await fixture.ConnectAsync();

        var version = await client.ExecuteAsync("query-version").Bounded();

        Assert.That(version.GetProperty("qemu").GetProperty("major").GetInt32(), Is.EqualTo(9));
        Assert.That(version.GetProperty("qemu").GetProperty("minor").GetInt32(), Is.EqualTo(0));
        Assert.That(version.GetProperty("qemu").GetProperty("micro").GetInt32(), Is.EqualTo(1));
        Assert.That(version.GetProperty("package").GetString(), Is.EqualTo("pkg"));
    }

    [Test]
    public async Task Query_status_follows_stop_and_cont()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var running = await client.ExecuteAsync("query-status").Bounded();
        Assert.That(running.GetProperty("status").GetString(), Is.EqualTo("running"));
        Assert.That(running.GetProperty("running").GetBoolean(), Is.True);
        Assert.That(running.GetProperty("singlestep").GetBoolean(), Is.False);

        await client.ExecuteAsync("stop").Bounded();
        var paused = await client.ExecuteAsync("query-status").Bounded();
        Assert.That(paused.GetProperty("status").GetString(), Is.EqualTo("paused"));
        Assert.That(paused.GetProperty("running").GetBoolean(), Is.False);
        Assert.That(fixture.Simulator.IsRunning, Is.False);

        await client.ExecuteAsync("cont").Bounded();
        Assert.That((await client.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.EqualTo("running"));
        Assert.That(fixture.Simulator.IsRunning, Is.True);
    }

    [Test]
    public async Task Query_commands_lists_the_built_ins_and_registered_commands()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("x-registered", (_, _) => ValueTask.FromResult<JsonElement?>(null));
        await using var client = await fixture.ConnectAsync();

        var commands = await client.ExecuteAsync("query-commands").Bounded();

        var names = commands.EnumerateArray().Select(c => c.GetProperty("name").GetString()).ToList();
        string[] builtIns = ["qmp_capabilities", "query-version", "query-status", "query-commands", "stop", "cont", "quit"];
        Assert.That(names, Is.SupersetOf(builtIns));
        Assert.That(names, Does.Contain("x-registered"));
        Assert.That(names, Is.Unique);
        Assert.That(names, Is.EquivalentTo(fixture.Simulator.Commands));
        Assert.That(fixture.Simulator.Commands, Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));
    }

    [Test]
    public async Task An_unknown_command_gets_CommandNotFound_naming_it()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAsync<QmpExecuteException>(() => client.ExecuteAsync("x-unknown").Bounded());

        Assert.That(error!.ErrorClass, Is.EqualTo("CommandNotFound"));
        Assert.That(error.Description, Is.EqualTo("The command x-unknown has not been found"));
    }

    [Test]
    public async Task Stop_and_cont_emit_STOP_and_RESUME_only_on_a_real_change()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();
        var listener = client.Listen();

        foreach (var command in new[] { "cont", "stop", "stop", "cont", "cont", "stop", "cont" })
        {
            await client.ExecuteAsync(command).Bounded();
        }

        // Events precede the reply of their command: all are buffered by now.
        listener.Dispose();
        var names = new List<string>();
        await foreach (var qmpEvent in listener.ReadAllAsync().WithCancellation(BoundedToken()))
        {
            names.Add(qmpEvent.Name);
        }

        Assert.That(names, Is.EqualTo(new[] { "STOP", "RESUME", "STOP", "RESUME" }));
    }

    // ---------------------------------------------------------------- user commands

    [Test]
    public async Task System_reset_while_stopped_leaves_the_machine_not_running_until_cont()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        await client.ExecuteAsync("stop").Bounded();
        await client.ExecuteAsync("system_reset").Bounded();
        var afterReset = await client.ExecuteAsync("query-status").Bounded();
        var wasRunning = fixture.Simulator.IsRunning;
        await client.ExecuteAsync("cont").Bounded();

        Assert.That(afterReset.GetProperty("status").GetString(), Is.EqualTo("prelaunch"));
        Assert.That(wasRunning, Is.False);
        Assert.That(fixture.Simulator.IsRunning, Is.True);
    }

    [Test]
    public async Task A_registered_handler_receives_the_arguments_and_its_value_is_returned()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        JsonElement? seen = null;
        fixture.Simulator.Handle("x-echo", (context, _) =>
        {
            seen = context.Arguments;
            Assert.That(context.Simulator, Is.SameAs(fixture.Simulator));
            Assert.That(context.Command.CommandName, Is.EqualTo("x-echo"));
            return ValueTask.FromResult(context.Arguments);
        });
        fixture.Simulator.Handle("x-nothing", (_, _) => ValueTask.FromResult<JsonElement?>(null));
        fixture.Simulator.Handle("x-number", async (_, _) =>
        {
            await Task.Yield();
            return QmpJson.Number(42);
        });
        await using var client = await fixture.ConnectAsync();

        var echoed = await client.ExecuteAsync("x-echo", QmpJson.Parse("""{"a":1,"b":[true,"s"]}""")).Bounded();
        var nothing = await client.ExecuteAsync("x-nothing").Bounded();
        var number = await client.ExecuteAsync("x-number").Bounded();

        Assert.That(seen, Is.Not.Null);
        Assert.That(echoed.GetRawText(), Is.EqualTo("""{"a": 1, "b": [true, "s"]}"""), "as QEMU writes it");
        Assert.That(nothing.ValueKind, Is.EqualTo(JsonValueKind.Object), "a null result is an empty object, as QEMU sends");
        Assert.That(nothing.EnumerateObject(), Is.Empty);
        Assert.That(number.GetInt32(), Is.EqualTo(42));
    }

    [Test]
    public async Task A_handler_throwing_QmpCommandError_answers_with_that_class_and_description()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("x-device-del", (_, _) => throw new QmpCommandError("DeviceNotFound", "Device 'disk9' not found"));
        fixture.Simulator.Handle("x-async-fail", async (_, _) =>
        {
            await Task.Yield();
            throw new QmpCommandError("KVMMissingCap", "missing");
        });
        await using var client = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAsync<QmpExecuteException>(() => client.ExecuteAsync("x-device-del").Bounded());
        var asyncError = await Assert.ThrowsAsync<QmpExecuteException>(() => client.ExecuteAsync("x-async-fail").Bounded());

        Assert.That(error!.ErrorClass, Is.EqualTo("DeviceNotFound"));
        Assert.That(error.Description, Is.EqualTo("Device 'disk9' not found"));
        Assert.That(error.Command, Is.EqualTo("x-device-del"));
        Assert.That(asyncError!.ErrorClass, Is.EqualTo("KVMMissingCap"));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
    }

    [Test]
    public async Task A_handler_throwing_any_other_exception_answers_GenericError_and_the_session_goes_on()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("x-crash", (_, _) => throw new InvalidOperationException("boom"));
        await using var client = await fixture.ConnectAsync();

        var error = await Assert.ThrowsAsync<QmpExecuteException>(() => client.ExecuteAsync("x-crash").Bounded());

        Assert.That(error!.ErrorClass, Is.EqualTo("GenericError"));
        Assert.That(error.Description, Is.EqualTo("boom"));
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Running));
        Assert.That((await client.ExecuteAsync("query-status").Bounded()).ValueKind, Is.EqualTo(JsonValueKind.Object));
    }

    [Test]
    public async Task A_handler_emits_events_before_its_reply()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("x-eject", async (context, token) =>
        {
            await context.EmitEventAsync("DEVICE_TRAY_MOVED", QmpJson.Parse("""{"device":"cd0","tray-open":true}"""), token);
            return null;
        });
        await using var client = await fixture.ConnectAsync();
        using var listener = client.Listen("DEVICE_TRAY_MOVED");

        await client.ExecuteAsync("x-eject").Bounded();

        var read = listener.ReadAsync();
        Assert.That(read.IsCompleted, Is.True, "the event precedes the reply");
        var moved = await read.Bounded();
        Assert.That(moved.Data!.Value.GetProperty("device").GetString(), Is.EqualTo("cd0"));
        Assert.That(moved.Timestamp, Is.GreaterThan(DateTimeOffset.UtcNow.AddMinutes(-1)));
    }

    [Test]
    public async Task Handle_replaces_a_built_in_and_validates_its_arguments()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("query-status", (_, _) => ValueTask.FromResult<JsonElement?>(QmpJson.Parse("""{"status":"inmigrate","running":false}""")));
        await using var client = await fixture.ConnectAsync();

        Assert.That((await client.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.EqualTo("inmigrate"));
        Assert.That(() => fixture.Simulator.Handle("", (_, _) => default), Throws.ArgumentException);
        Assert.That(() => fixture.Simulator.Handle("x", null!), Throws.ArgumentNullException);
    }

    // ---------------------------------------------------------------- events

    [Test]
    public async Task EmitEventAsync_reaches_the_connected_client()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        Assert.That(await fixture.Simulator.EmitEventAsync("NOBODY").Bounded(), Is.False, "no client connected");
        await using var client = await fixture.ConnectAsync();
        using var listener = client.Listen("BLOCK_JOB_COMPLETED");

        var sent = await fixture.Simulator.EmitEventAsync("BLOCK_JOB_COMPLETED", QmpJson.Parse("""{"device":"job0","len":10,"offset":10}""")).Bounded();
        var unlistened = await fixture.Simulator.EmitEventAsync("IGNORED").Bounded();

        Assert.That(sent, Is.True);
        Assert.That(unlistened, Is.True);
        var completed = await listener.ReadAsync().Bounded();
        Assert.That(completed.Name, Is.EqualTo("BLOCK_JOB_COMPLETED"));
        Assert.That(completed.Data!.Value.GetProperty("len").GetInt32(), Is.EqualTo(10));
    }

    [Test]
    public async Task EmitEventAsync_after_StopAsync_returns_false()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        await fixture.Simulator.StopAsync().Bounded();

        Assert.That(await fixture.Simulator.EmitEventAsync("LATE").Bounded(), Is.False);
    }

    [Test]
    public async Task EmitEventAsync_racing_StopAsync_returns_true_or_false_but_never_throws()
    {
        // The race is narrow: run rounds until one throws, within a time budget.
        const int maximumRounds = 300;
        var budget = System.Diagnostics.Stopwatch.StartNew();
        var rounds = 0;
        var thrown = new List<Exception>();
        while (rounds < maximumRounds && budget.Elapsed < TimeSpan.FromSeconds(3) && thrown.Count == 0)
        {
            rounds++;
            thrown.AddRange(await EmitWhileStoppingAsync());
        }

        await TestContext.Out.WriteLineAsync($"{rounds} rounds in {budget.ElapsedMilliseconds} ms, {thrown.Count} exceptions.");
        Assert.That(thrown, Is.Empty, () => $"EmitEventAsync threw in round {rounds}: " + string.Join("; ", thrown.Select(e => $"{e.GetType().FullName}: {e.Message}").Distinct()));

        static async Task<List<Exception>> EmitWhileStoppingAsync()
        {
            await using var fixture = await SimulatorFixture.StartAsync();
            await using var client = await fixture.ConnectAsync();
            using var stopEmitting = new CancellationTokenSource();
            var emitter = Task.Run(async () =>
            {
                var errors = new List<Exception>();
                while (!stopEmitting.IsCancellationRequested)
                {
                    try
                    {
                        await fixture.Simulator.EmitEventAsync("TICK");
                    }
                    catch (Exception ex)
                    {
                        errors.Add(ex);
                    }
                }

                return errors;
            });

            await Task.Delay(1);
            await fixture.Simulator.StopAsync().Bounded();
            await Task.Delay(1);
            await stopEmitting.CancelAsync();
            return await emitter.Bounded();
        }
    }

    // ---------------------------------------------------------------- clients one at a time

    [Test]
    public async Task Clients_are_served_one_at_a_time_in_turn()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        var first = await fixture.ConnectAsync();
        await using var second = new QmpClient();

        var connecting = second.ConnectAsync(fixture.Address);
        await Task.Delay(300);

        Assert.That(connecting.IsCompleted, Is.False, "the second client waits in the backlog for its greeting");
        Assert.That(second.Runstate, Is.EqualTo(Runstate.Connecting));
        Assert.That(fixture.Simulator.SessionsServed, Is.EqualTo(1));
        Assert.That((await first.ExecuteAsync("query-status").Bounded()).ValueKind, Is.EqualTo(JsonValueKind.Object));

        await Assert.DoesNotThrowAsync(() => first.DisconnectAsync().Bounded());
        await connecting.Bounded();

        Assert.That(second.Runstate, Is.EqualTo(Runstate.Running));
        Assert.That(fixture.Simulator.SessionsServed, Is.EqualTo(2));
        Assert.That((await second.ExecuteAsync("query-status").Bounded()).ValueKind, Is.EqualTo(JsonValueKind.Object));
        await first.DisposeAsync();
    }

    [Test]
    public async Task The_machine_state_outlives_a_client()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using (var first = await fixture.ConnectAsync())
        {
            await first.ExecuteAsync("stop").Bounded();
        }

        await using var second = await fixture.ConnectAsync();
        Assert.That((await second.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.EqualTo("paused"));
    }

    // ---------------------------------------------------------------- quit and stop

    [Test]
    public async Task Quit_emits_SHUTDOWN_then_the_simulator_stops_and_refuses_new_clients()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();
        using var listener = client.Listen();

        await client.ExecuteAsync("quit").Bounded();

        var shutdown = await listener.ReadAsync().Bounded();
        Assert.That(shutdown.Name, Is.EqualTo("SHUTDOWN"));
        Assert.That(shutdown.Data!.Value.GetProperty("reason").GetString(), Is.EqualTo("host-qmp-quit"));
        await Assert.DoesNotThrowAsync(() => client.DisconnectAsync().Bounded());
        Assert.That(await fixture.Simulator.Completion.Bounded(), Is.EqualTo(QmpSimulatorStopReason.Quit));
        Assert.That(File.Exists(fixture.Path), Is.False, "the socket file is gone");

        await using var late = new QmpClient();
        var refused = await Assert.ThrowsAsync<ConnectException>(() => late.ConnectAsync(fixture.Address).Bounded());
        Assert.That(refused!.InnerException, Is.InstanceOf<SocketException>());
        Assert.That(late.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task Quit_with_StopOnQuit_false_ends_the_session_but_keeps_serving()
    {
        await using var fixture = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { StopOnQuit = false });
        await using (var client = await fixture.ConnectAsync())
        {
            await client.ExecuteAsync("quit").Bounded();
            await Assert.DoesNotThrowAsync(() => client.DisconnectAsync().Bounded());
        }

        await using var next = await fixture.ConnectAsync();
        Assert.That((await next.ExecuteAsync("query-status").Bounded()).ValueKind, Is.EqualTo(JsonValueKind.Object));
        Assert.That(fixture.Simulator.Completion.IsCompleted, Is.False);
        Assert.That(fixture.Simulator.SessionsServed, Is.EqualTo(2));
    }

    [Test]
    public async Task StopAsync_ends_the_current_clients_session_which_then_raises_EndOfStreamException()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();
        using var listener = client.Listen();
        var sessionEnd = client.WaitForRunstateChangeAsync();

        await fixture.Simulator.StopAsync().Bounded();

        Assert.That(await sessionEnd.Bounded(), Is.EqualTo(Runstate.Disconnecting), "the session ends by itself");
        var listenerError = await Assert.CatchAsync(() => listener.ReadAsync().AsTask().Bounded());
        Assert.That(listenerError, Is.InstanceOf<System.Threading.Channels.ChannelClosedException>());
        Assert.That(listenerError!.InnerException, Is.InstanceOf<EndOfStreamException>());
        var error = await Assert.CatchAsync(() => client.DisconnectAsync().Bounded());
        Assert.That(error, Is.InstanceOf<EndOfStreamException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
        Assert.That(await fixture.Simulator.Completion.Bounded(), Is.EqualTo(QmpSimulatorStopReason.Stopped));

        await using var late = new QmpClient();
        await Assert.ThrowsAsync<ConnectException>(() => late.ConnectAsync(fixture.Address).Bounded());
    }

    [Test]
    public async Task StopAsync_interrupts_an_execute_whose_handler_still_runs()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handlerCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        fixture.Simulator.Handle("x-slow", async (_, token) =>
        {
            started.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, token);
            }
            catch (OperationCanceledException)
            {
                handlerCancelled.TrySetResult();
                throw;
            }

            return null;
        });
        await using var client = await fixture.ConnectAsync();
        var pending = client.ExecuteAsync("x-slow");
        await started.Task.Bounded();

        await fixture.Simulator.StopAsync().Bounded();

        await handlerCancelled.Task.Bounded();
        var interrupted = await Assert.ThrowsAsync<QmpExecuteInterruptedException>(() => pending.Bounded());
        Assert.That(interrupted!.Command, Is.EqualTo("x-slow"));
        Assert.That(interrupted.InnerException, Is.InstanceOf<EndOfStreamException>());
        await Assert.CatchAsync(() => client.DisconnectAsync().Bounded());
    }

    [Test]
    public async Task StopAsync_and_DisposeAsync_complete_Completion_even_when_never_started()
    {
        var simulator = new QmpSimulator();
        Assert.That(simulator.Completion.IsCompleted, Is.False);

        await simulator.StopAsync().Bounded();
        Assert.That(await simulator.Completion.Bounded(), Is.EqualTo(QmpSimulatorStopReason.Stopped));
        await simulator.DisposeAsync().Bounded();
        Assert.That(simulator.SessionsServed, Is.Zero);
    }

    // ---------------------------------------------------------------- in-memory pipes

    [Test]
    public async Task ServeAsync_serves_a_whole_session_over_in_memory_pipes()
    {
        var (serverEnd, clientEnd) = PipePair.Create();
        await using var simulator = new QmpSimulator();
        var serving = simulator.ServeAsync(serverEnd);
        await using var client = new QmpClient();

        await client.OpenAsync(clientEnd).Bounded();

        Assert.That(client.Greeting!.Version, Is.EqualTo(QmpSimulatorOptions.Default.Version));
        using var listener = client.Listen();
        Assert.That((await client.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.EqualTo("running"));
        await client.ExecuteAsync("stop").Bounded();
        Assert.That((await listener.ReadAsync().Bounded()).Name, Is.EqualTo("STOP"));
        Assert.That(await simulator.EmitEventAsync("CUSTOM").Bounded(), Is.True);
        Assert.That((await listener.ReadAsync().Bounded()).Name, Is.EqualTo("CUSTOM"));
        Assert.That(simulator.SessionsServed, Is.EqualTo(1));
        Assert.That(serving.IsCompleted, Is.False);

        await Assert.DoesNotThrowAsync(() => client.DisconnectAsync().Bounded());
        await serving.Bounded();
        Assert.That(await simulator.EmitEventAsync("AFTER").Bounded(), Is.False);
    }

    [Test]
    public async Task ServeAsync_over_in_memory_pipes_answers_quit_and_ends_cleanly()
    {
        var (serverEnd, clientEnd) = PipePair.Create();
        await using var simulator = new QmpSimulator();
        var serving = simulator.ServeAsync(serverEnd);
        await using var client = new QmpClient();
        await client.OpenAsync(clientEnd).Bounded();
        using var listener = client.Listen();

        await client.ExecuteAsync("quit").Bounded();

        Assert.That((await listener.ReadAsync().Bounded()).Name, Is.EqualTo("SHUTDOWN"));
        await serving.Bounded();
        await Assert.DoesNotThrowAsync(() => client.DisconnectAsync().Bounded());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    [Test]
    public async Task ServeAsync_ends_the_session_when_its_token_is_cancelled()
    {
        var (serverEnd, clientEnd) = PipePair.Create();
        await using var simulator = new QmpSimulator();
        using var cancel = new CancellationTokenSource();
        var serving = simulator.ServeAsync(serverEnd, cancel.Token);
        await using var client = new QmpClient();
        await client.OpenAsync(clientEnd).Bounded();
        Assert.That((await client.ExecuteAsync("query-status").Bounded()).ValueKind, Is.EqualTo(JsonValueKind.Object));
        var sessionEnd = client.WaitForRunstateChangeAsync();

        await cancel.CancelAsync();

        await serving.Bounded();
        Assert.That(await sessionEnd.Bounded(), Is.EqualTo(Runstate.Disconnecting));
        var error = await Assert.CatchAsync(() => client.DisconnectAsync().Bounded());
        Assert.That(error, Is.InstanceOf<EndOfStreamException>());
        Assert.That(client.Runstate, Is.EqualTo(Runstate.Idle));
    }

    // ---------------------------------------------------------------- helpers

    private static string TempSocketPath() => Path.Combine(Path.GetTempPath(), $"aqmp-simtest-{Guid.NewGuid():N}.sock");

    private static CancellationToken BoundedToken() => new CancellationTokenSource(TestTimeouts.Default).Token;

    /// <summary>A raw peer past the greeting and a successful <c>qmp_capabilities</c>.</summary>
    private static async Task<RawQmpPeer> NegotiatedRawQmpPeerAsync(SimulatorFixture fixture)
    {
        var raw = await RawQmpPeer.ConnectAsync(fixture.Path);
        await raw.ReadAsync();
        Assert.That((await raw.ExecuteAsync("qmp_capabilities", 0)).TryGetProperty("return", out _), Is.True);
        return raw;
    }

    private static void AssertJsonEqual(JsonElement actual, string expected)
        => Assert.That(JsonElement.DeepEquals(actual, QmpJson.Parse(expected)), Is.True, () => $"expected {expected} but was {actual.GetRawText()}");

    private static string? ErrorClass(JsonElement reply) => reply.GetProperty("error").GetProperty("class").GetString();

    private static string? ErrorDescription(JsonElement reply) => reply.GetProperty("error").GetProperty("desc").GetString();

    /// <summary>Two cross-connected in-memory duplex pipes: what one end writes, the other reads.</summary>
    private sealed class PipePair(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;

        public static (PipePair Server, PipePair Client) Create()
        {
            var toServer = new Pipe();
            var toClient = new Pipe();
            return (new PipePair(toServer.Reader, toClient.Writer), new PipePair(toClient.Reader, toServer.Writer));
        }
    }
}
