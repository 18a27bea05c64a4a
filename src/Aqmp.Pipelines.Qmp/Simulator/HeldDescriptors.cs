using Microsoft.Win32.SafeHandles;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The descriptors one client connection holds for its next <c>getfd</c> or <c>add-fd</c>, as
/// QEMU's socket chardev holds them: those of the last message that brought any, replacing (and
/// closing) the ones before; the first is taken by a command, and the rest closed. Thread-safe.
/// </summary>
internal sealed class HeldDescriptors
{
    private readonly Lock _lock = new();
    private SafeFileHandle[] _held = [];

    /// <summary>Holds <paramref name="arrived"/> instead of what was held (which is closed), when any arrived; with null, closes what is held.</summary>
    public void Replace(SafeFileHandle[]? arrived)
    {
        if (arrived is { Length: 0 })
        {
            return;
        }

        SafeFileHandle[] old;
        lock (_lock)
        {
            old = _held;
            _held = arrived ?? [];
        }

        CloseAll(old);
    }

    /// <summary>Takes the first descriptor held and closes the others; null when none is held.</summary>
    public SafeFileHandle? TakeFirst()
    {
        SafeFileHandle[] taken;
        lock (_lock)
        {
            taken = _held;
            _held = [];
        }

        if (taken.Length == 0)
        {
            return null;
        }

        CloseAll(taken.AsSpan(1));
        return taken[0];
    }

    private static void CloseAll(ReadOnlySpan<SafeFileHandle> handles)
    {
        foreach (var handle in handles)
        {
            handle.Dispose();
        }
    }
}
