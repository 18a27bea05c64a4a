namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>One token of QEMU's JSON lexer: its kind and its bytes as they arrived.</summary>
/// <param name="Type">The kind of token.</param>
/// <param name="Text">The token's bytes (for an error token, the bytes of the token it interrupted and the offending byte).</param>
internal readonly record struct QemuJsonToken(QemuJsonTokenType Type, byte[] Text);
