namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>What <see cref="QemuJsonStreamer.Scan"/> found at the start of its input.</summary>
/// <param name="Outcome">Whether a value's tokens, an error, or nothing yet was found.</param>
/// <param name="End">How many bytes QEMU has consumed once it emits the value or error (whitespace before it included).</param>
/// <param name="Tokens">The value's tokens, for <see cref="QemuJsonScanOutcome.Value"/>.</param>
/// <param name="Error">The error's description, for <see cref="QemuJsonScanOutcome.Error"/>.</param>
/// <param name="Recovering">Whether the lexer is skipping bytes after <see cref="End"/> (after a stray byte).</param>
/// <param name="Idle">For <see cref="QemuJsonScanOutcome.NeedMore"/>: whether all the input was whitespace or skipped, so it may be consumed.</param>
internal readonly record struct QemuJsonScan(QemuJsonScanOutcome Outcome, long End, List<QemuJsonToken>? Tokens, string? Error, bool Recovering, bool Idle);
