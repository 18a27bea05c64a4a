using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The commands the simulator models, with QEMU 7.2's replies and events for
/// <c>qemu-system-x86_64 -M none</c>: <c>query-status</c>, <c>stop</c>/<c>cont</c> (<c>STOP</c>/<c>RESUME</c>
/// on a real change), <c>system_reset</c> (<c>RESET</c>; a machine not running is left in
/// <c>prelaunch</c>), <c>system_powerdown</c> (<c>POWERDOWN</c>), <c>quit</c> (<c>SHUTDOWN</c>),
/// <c>query-version</c>, <c>query-name</c> (no name), <c>query-uuid</c> (all zeros),
/// <c>query-kvm</c> (present, not enabled), <c>query-yank</c> (the monitor's chardev),
/// <c>query-commands</c>, <c>query-qmp-schema</c> and <c>human-monitor-command</c>.
/// </summary>
internal static class SimulatorCommands
{
    private static readonly Lazy<JsonElement> NoName = new(() => QmpJson.Parse("{}"));
    private static readonly Lazy<JsonElement> Uuid = new(() => QmpJson.Parse("""{"UUID":"00000000-0000-0000-0000-000000000000"}"""));
    private static readonly Lazy<JsonElement> Kvm = new(() => QmpJson.Parse("""{"enabled":false,"present":true}"""));
    private static readonly Lazy<JsonElement> Yank = new(() => QmpJson.Parse("""[{"type":"chardev","id":"compat_monitor0"}]"""));
    private static readonly Lazy<JsonElement> ResetData = new(() => QmpJson.Parse("""{"guest":false,"reason":"host-qmp-system-reset"}"""));
    private static readonly Lazy<JsonElement> ShutdownData = new(() => QmpJson.Parse("""{"guest":false,"reason":"host-qmp-quit"}"""));

    /// <summary>Registers the modelled commands on <paramref name="simulator"/>.</summary>
    /// <param name="simulator">The simulator.</param>
    /// <param name="machine">The machine the commands drive.</param>
    /// <param name="version">What <c>query-version</c> and <c>info version</c> report.</param>
    /// <param name="quitRequested">Called when <c>quit</c> runs.</param>
    public static void Register(QmpSimulator simulator, SimulatedMachine machine, QmpVersion version, Action quitRequested)
    {
        var monitor = new HumanMonitor(machine, version);

        simulator.Handle("query-version", (_, _) => Value(QmpJson.Write(version.WriteTo)));
        simulator.Handle("query-name", (_, _) => Value(NoName.Value));
        simulator.Handle("query-uuid", (_, _) => Value(Uuid.Value));
        simulator.Handle("query-kvm", (_, _) => Value(Kvm.Value));
        simulator.Handle("query-yank", (_, _) => Value(Yank.Value));
        simulator.Handle("query-qmp-schema", (_, _) => Value(QemuSchema.Qemu72.Entities));

        simulator.Handle("query-status", (_, _) => Value(QmpJson.Write(writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("status", machine.Status);
            writer.WriteBoolean("singlestep", false);
            writer.WriteBoolean("running", machine.IsRunning);
            writer.WriteEndObject();
        })));

        simulator.Handle("query-commands", (context, _) => Value(QmpJson.Write(writer =>
        {
            writer.WriteStartArray();
            foreach (var command in context.Simulator.CommandsAsListed())
            {
                writer.WriteStartObject();
                writer.WriteString("name", command);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        })));

        simulator.Handle("stop", async (context, token) =>
        {
            if (machine.Pause())
            {
                await context.EmitEventAsync("STOP", cancellationToken: token).ConfigureAwait(false);
            }

            return null;
        });

        simulator.Handle("cont", async (context, token) =>
        {
            if (machine.Resume())
            {
                await context.EmitEventAsync("RESUME", cancellationToken: token).ConfigureAwait(false);
            }

            return null;
        });

        simulator.Handle("system_reset", async (context, token) =>
        {
            await context.EmitEventAsync("RESET", ResetData.Value, token).ConfigureAwait(false);
            machine.Reset();
            return null;
        });

        simulator.Handle("system_powerdown", async (context, token) =>
        {
            // Without a guest nothing answers the ACPI request: the machine keeps running.
            await context.EmitEventAsync("POWERDOWN", cancellationToken: token).ConfigureAwait(false);
            return null;
        });

        simulator.Handle("quit", async (context, token) =>
        {
            await context.EmitEventAsync("SHUTDOWN", ShutdownData.Value, token).ConfigureAwait(false);

            // The session closes itself once the reply is sent; the simulator stops after it.
            quitRequested();
            return null;
        });

        simulator.Handle("human-monitor-command", async (context, token) =>
        {
            var arguments = context.Arguments!.Value;
            if (arguments.TryGetProperty("cpu-index", out _))
            {
                // -M none has no CPU to select.
                throw new QmpCommandError("GenericError", "Parameter 'cpu-index' expects a CPU number");
            }

            var output = await monitor.RunAsync(
                arguments.GetProperty("command-line").GetString()!,
                name => context.EmitEventAsync(name, cancellationToken: token)).ConfigureAwait(false);
            return QmpJson.String(output);
        });
    }

    private static ValueTask<JsonElement?> Value(JsonElement value) => ValueTask.FromResult<JsonElement?>(value);
}
