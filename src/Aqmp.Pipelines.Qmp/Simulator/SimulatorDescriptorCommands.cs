using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// QEMU 7.2's descriptor commands, with its replies and error texts: <c>getfd</c> and
/// <c>add-fd</c> take the descriptor the client passed with the last message that carried any;
/// <c>closefd</c>, <c>query-fdsets</c> and <c>remove-fd</c> work on what they hold.
/// </summary>
internal static class SimulatorDescriptorCommands
{
    private const string NoDescriptor = "No file descriptor supplied via SCM_RIGHTS";

    /// <summary>Registers the commands on <paramref name="simulator"/>, holding descriptors in <paramref name="held"/>.</summary>
    public static void Register(QmpSimulator simulator, SimulatorDescriptors held, SimulatedMachine machine)
    {
        simulator.Handle("getfd", (context, _) =>
        {
            var name = context.Arguments!.Value.GetProperty("fdname").GetString()!;
            var handle = context.TakeDescriptor() ?? throw new QmpCommandError("GenericError", NoDescriptor);
            if (name.Length > 0 && char.IsAsciiDigit(name[0]))
            {
                handle.Dispose();
                throw new QmpCommandError("GenericError", "Parameter 'fdname' expects a name not starting with a digit");
            }

            held.Name(name, handle);
            return Value(null);
        });

        simulator.Handle("closefd", (context, _) =>
        {
            var name = context.Arguments!.Value.GetProperty("fdname").GetString()!;
            return held.Close(name) ? Value(null) : throw new QmpCommandError("GenericError", $"File descriptor named '{name}' not found");
        });

        simulator.Handle("add-fd", (context, _) =>
        {
            var arguments = context.Arguments;
            long? fdsetId = arguments is { } a && a.TryGetProperty("fdset-id", out var id) ? id.GetInt64() : null;
            string? opaque = arguments is { } b && b.TryGetProperty("opaque", out var text) ? text.GetString() : null;
            var handle = context.TakeDescriptor() ?? throw new QmpCommandError("GenericError", NoDescriptor);
            if (fdsetId < 0)
            {
                handle.Dispose();
                throw new QmpCommandError("GenericError", "Parameter 'fdset-id' expects a non-negative value");
            }

            var fd = (long)handle.DangerousGetHandle();
            var set = held.Add(handle, fdsetId, opaque);
            return Value(QmpJson.Write(writer =>
            {
                writer.WriteStartObject();
                writer.WriteNumber("fdset-id", set);
                writer.WriteNumber("fd", fd);
                writer.WriteEndObject();
            }));
        });

        simulator.Handle("query-fdsets", (_, _) => Value(QmpJson.Write(writer =>
        {
            writer.WriteStartArray();
            foreach (var (id, entries) in held.Sets())
            {
                writer.WriteStartObject();
                writer.WriteNumber("fdset-id", id);
                writer.WriteStartArray("fds");
                foreach (var entry in entries)
                {
                    writer.WriteStartObject();
                    writer.WriteNumber("fd", entry.Fd);
                    if (entry.Opaque is not null)
                    {
                        writer.WriteString("opaque", entry.Opaque);
                    }

                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        })));

        simulator.Handle("remove-fd", (context, _) =>
        {
            var arguments = context.Arguments!.Value;
            var fdsetId = arguments.GetProperty("fdset-id").GetInt64();
            long? fd = arguments.TryGetProperty("fd", out var number) ? number.GetInt64() : null;
            if (held.Remove(fdsetId, fd, machine.IsRunning))
            {
                return Value(null);
            }

            var named = fd is { } f ? $"fdset-id:{fdsetId}, fd:{f}" : $"fdset-id:{fdsetId}";
            throw new QmpCommandError("GenericError", $"File descriptor named '{named}' not found");
        });
    }

    private static ValueTask<JsonElement?> Value(JsonElement? value) => ValueTask.FromResult(value);
}
