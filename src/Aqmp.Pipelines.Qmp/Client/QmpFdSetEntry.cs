namespace Aqmp.Pipelines.Qmp.Client;

/// <summary>
/// Where QEMU put a file descriptor passed with <c>add-fd</c>: the fd set and the descriptor's
/// number in QEMU (the <c>AddfdInfo</c> QEMU returns). QEMU opens it as <c>/dev/fdset/{FdsetId}</c>;
/// <c>remove-fd</c> with both releases it.
/// </summary>
/// <param name="FdsetId">The fd set's id (<c>fdset-id</c>).</param>
/// <param name="Fd">The descriptor's number in QEMU (<c>fd</c>).</param>
public sealed record QmpFdSetEntry(long FdsetId, long Fd);
