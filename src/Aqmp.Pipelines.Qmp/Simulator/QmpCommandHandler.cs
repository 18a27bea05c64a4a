using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// Runs one simulated command and returns its <c>return</c> value (null for an empty object).
/// Throw <see cref="QmpCommandError"/> to answer with an error reply; any other exception answers
/// with a <c>GenericError</c> carrying its message.
/// </summary>
/// <param name="context">The command and a way to emit events.</param>
/// <param name="cancellationToken">Fires when the client session ends.</param>
/// <returns>The return value.</returns>
public delegate ValueTask<JsonElement?> QmpCommandHandler(QmpCommandContext context, CancellationToken cancellationToken);
