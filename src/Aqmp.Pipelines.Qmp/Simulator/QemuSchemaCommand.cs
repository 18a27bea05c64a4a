namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>A command of QEMU's QAPI schema, as <c>query-qmp-schema</c> describes it.</summary>
/// <param name="Name">The command name.</param>
/// <param name="ArgumentType">The name of its arguments' object type (masked, as the schema gives it).</param>
/// <param name="AllowsOutOfBand">Whether the schema marks it <c>allow-oob</c>, so <c>exec-oob</c> may run it.</param>
internal sealed record QemuSchemaCommand(string Name, string ArgumentType, bool AllowsOutOfBand);
