using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;

namespace Aqmp.Pipelines.Qmp.Tests.Simulator;

/// <summary>
/// The simulator and QEMU 7.2's QAPI schema where they differ from QEMU by design, or where the
/// differential test cannot reach: commands with no simulated behaviour, registered handlers and
/// their argument checking, the listing of registered commands, and what the schema resource holds.
/// What QEMU itself answers is specified by <c>Integration/SimulatorDifferentialTests</c>.
/// </summary>
public class QmpSimulatorSchemaTests
{
    private const string NotSimulated = "The command device_del is not simulated by the Aqmp.Pipelines QMP simulator";

    [Test]
    public async Task A_schema_command_with_no_simulated_behaviour_gets_a_GenericError_naming_the_simulator()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var error = await ExecuteFailingAsync(client, "device_del", """{"id":"disk0"}""");

        Assert.That(error.ErrorClass, Is.EqualTo("GenericError"));
        Assert.That(error.Description, Is.EqualTo(NotSimulated));
    }

    [TestCase("device_del", null, "Parameter 'id' is missing")]
    [TestCase("device_del", """{"id":true}""", "Invalid parameter type for 'id', expected: string")]
    [TestCase("device_del", """{"id":"a","x":1}""", "Parameter 'x' is unexpected")]
    [TestCase("qom-set", """{"path":"/","property":"p"}""", "Parameter 'value' is missing")]
    [TestCase("send-key", """{"keys":[{"type":"qcode","data":"a"}],"hold-time":"1"}""", "Invalid parameter type for 'hold-time', expected: integer")]
    public async Task Arguments_of_a_command_with_no_simulated_behaviour_are_checked_first_with_QEMUs_texts(string command, string? arguments, string description)
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var error = await ExecuteFailingAsync(client, command, arguments);

        Assert.That(error.ErrorClass, Is.EqualTo("GenericError"));
        Assert.That(error.Description, Is.EqualTo(description));
    }

    [TestCase("""{"path":"/","property":"p","value":{"any":[1,"x",null]}}""")]
    [TestCase("""{"path":"/","property":"p","value":null}""")]
    public async Task A_member_of_type_any_takes_every_value(string arguments)
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var error = await ExecuteFailingAsync(client, "qom-set", arguments);

        Assert.That(error.Description, Is.EqualTo("The command qom-set is not simulated by the Aqmp.Pipelines QMP simulator"));
    }

    [Test]
    public async Task Handle_on_a_schema_command_runs_the_handler_only_for_arguments_the_schema_accepts()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        var calls = 0;
        fixture.Simulator.Handle("device_del", (context, _) =>
        {
            calls++;
            return ValueTask.FromResult<JsonElement?>(QmpJson.String(context.Arguments!.Value.GetProperty("id").GetString()!));
        });
        await using var client = await fixture.ConnectAsync();

        var missing = await ExecuteFailingAsync(client, "device_del", null);
        var unexpected = await ExecuteFailingAsync(client, "device_del", """{"id":"disk0","force":true}""");
        var deleted = await client.ExecuteAsync("device_del", QmpJson.Parse("""{"id":"disk0"}""")).Bounded();

        Assert.That(missing.Description, Is.EqualTo("Parameter 'id' is missing"));
        Assert.That(unexpected.Description, Is.EqualTo("Parameter 'force' is unexpected"));
        Assert.That(deleted.GetString(), Is.EqualTo("disk0"));
        Assert.That(calls, Is.EqualTo(1), "the handler ran for the valid call only");
    }

    [Test]
    public async Task Handle_overrides_a_built_in_command_which_keeps_its_argument_checking()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("human-monitor-command", (context, _) => ValueTask.FromResult<JsonElement?>(QmpJson.String("mine: " + context.Arguments!.Value.GetProperty("command-line").GetString())));
        await using var client = await fixture.ConnectAsync();

        var output = await client.ExecuteAsync("human-monitor-command", QmpJson.Parse("""{"command-line":"info block"}""")).Bounded();
        var error = await ExecuteFailingAsync(client, "human-monitor-command", """{"command-line":5}""");

        Assert.That(output.GetString(), Is.EqualTo("mine: info block"));
        Assert.That(error.Description, Is.EqualTo("Invalid parameter type for 'command-line', expected: string"));
    }

    [Test]
    public async Task A_registered_command_outside_the_schema_gets_whatever_arguments_were_sent()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("x-echo", (context, _) => ValueTask.FromResult(context.Arguments));
        await using var client = await fixture.ConnectAsync();

        var echoed = await client.ExecuteAsync("x-echo", QmpJson.Parse("""{"anything":[1,{"goes":true}]}""")).Bounded();

        Assert.That(echoed.GetProperty("anything")[1].GetProperty("goes").GetBoolean(), Is.True);
    }

    [Test]
    public async Task Query_commands_lists_registered_commands_outside_the_schema_first_then_QEMUs_in_its_order()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("x-b", (_, _) => default);
        fixture.Simulator.Handle("x-a", (_, _) => default);
        fixture.Simulator.Handle("stop", (_, _) => default);
        await using var client = await fixture.ConnectAsync();

        var names = (await client.ExecuteAsync("query-commands").Bounded()).EnumerateArray().Select(c => c.GetProperty("name").GetString()!).ToList();

        Assert.That(names.Take(4), Is.EqualTo(new[] { "x-a", "x-b", "device_add", "x-query-virtio-queue-element" }));
        Assert.That(names, Has.Count.EqualTo(216 + 2), "QEMU 7.2 has 216 commands; a replaced built-in is listed once");
        Assert.That(names, Is.Unique);
        Assert.That(names.Last(), Is.EqualTo("query-status"), "the first command of the schema is the last listed");
        Assert.That(fixture.Simulator.Commands, Is.EquivalentTo(names));
        Assert.That(fixture.Simulator.Commands, Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));
    }

    [Test]
    public async Task Query_qmp_schema_returns_the_schema_QEMU_7_2_returned()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();
        using var recorded = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(TestContext.CurrentContext.TestDirectory, "Data", "query-qmp-schema.json")));

        var schema = await client.ExecuteAsync("query-qmp-schema").Bounded();

        Assert.That(JsonElement.DeepEquals(schema, recorded.RootElement.GetProperty("return")), Is.True);
    }

    [Test]
    public async Task Exec_oob_runs_a_command_the_schema_allows_out_of_band_but_not_a_registered_one_outside_it()
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        fixture.Simulator.Handle("x-fast", (_, _) => default);
        await using var client = await fixture.ConnectAsync(new QmpClientOptions { EnableOutOfBand = true });

        var instances = await client.ExecuteMessageAsync(QmpMessage.Command("query-yank", outOfBand: true)).Bounded();
        var refused = await client.ExecuteMessageAsync(QmpMessage.Command("x-fast", outOfBand: true)).Bounded();

        Assert.That(instances.ReturnValue!.Value[0].GetProperty("id").GetString(), Is.EqualTo("compat_monitor0"));
        Assert.That(refused.ErrorDescription, Is.EqualTo("The command x-fast does not support OOB"));
    }

    [TestCase("info block", "The human monitor command info block is not simulated by the Aqmp.Pipelines QMP simulator")]
    [TestCase("balloon 1", "The human monitor command balloon is not simulated by the Aqmp.Pipelines QMP simulator")]
    [TestCase("q", "The human monitor command quit|q is not simulated by the Aqmp.Pipelines QMP simulator")]
    public async Task A_human_monitor_command_QEMU_has_but_the_simulator_does_not_model_gets_its_GenericError(string commandLine, string description)
    {
        await using var fixture = await SimulatorFixture.StartAsync();
        await using var client = await fixture.ConnectAsync();

        var error = await ExecuteFailingAsync(client, "human-monitor-command", $$"""{"command-line":"{{commandLine}}"}""");

        Assert.That(error.ErrorClass, Is.EqualTo("GenericError"));
        Assert.That(error.Description, Is.EqualTo(description));
    }

    private static async Task<QmpExecuteException> ExecuteFailingAsync(QmpClient client, string command, string? arguments)
        => (await Assert.ThrowsAsync<QmpExecuteException>(() => client.ExecuteAsync(command, arguments is null ? null : QmpJson.Parse(arguments)).Bounded()))!;
}
