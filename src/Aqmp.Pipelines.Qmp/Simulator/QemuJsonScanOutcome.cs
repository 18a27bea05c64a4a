namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>What QEMU's JSON streamer does with the bytes scanned so far.</summary>
internal enum QemuJsonScanOutcome
{
    /// <summary>Nothing to emit yet: more bytes are needed.</summary>
    NeedMore,

    /// <summary>A balanced run of tokens, for the parser.</summary>
    Value,

    /// <summary>An error reply (a stray byte, or a limit exceeded).</summary>
    Error,
}
