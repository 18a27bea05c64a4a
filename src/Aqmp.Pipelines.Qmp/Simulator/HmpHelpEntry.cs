namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>One command's entry in QEMU's human monitor help.</summary>
/// <param name="FullName">Its names as the help shows them, e.g. <c>stop|s</c>.</param>
/// <param name="Text">Its help text, lines ended by CRLF (what <c>help stop</c> prints).</param>
/// <param name="TakesArguments">Whether it takes arguments (without, anything after its name is refused).</param>
internal sealed record HmpHelpEntry(string FullName, string Text, bool TakesArguments);
