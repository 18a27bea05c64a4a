using Microsoft.Win32.SafeHandles;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The descriptors the simulator holds for its clients, as QEMU 7.2's monitor holds them: named
/// ones (<c>getfd</c>, <c>closefd</c>), kept across client connections, and fd sets
/// (<c>add-fd</c>, <c>query-fdsets</c>, <c>remove-fd</c>), ordered by id, each listing its newest
/// descriptor first; a set with no descriptor left is dropped. Thread-safe.
/// </summary>
internal sealed class SimulatorDescriptors : IDisposable
{
    private readonly Lock _lock = new();
    private readonly List<(string Name, SafeFileHandle Handle)> _named = [];   // newest first
    private readonly SortedDictionary<long, List<FdSetEntry>> _sets = [];       // entries newest first

    /// <summary>One descriptor in an fd set.</summary>
    public sealed record FdSetEntry(SafeFileHandle Handle, string? Opaque)
    {
        public long Fd => (long)Handle.DangerousGetHandle();

        public bool Removed { get; set; }
    }

    /// <summary>Holds <paramref name="handle"/> under <paramref name="name"/>; a descriptor held under it already is closed.</summary>
    public void Name(string name, SafeFileHandle handle)
    {
        SafeFileHandle? old = null;
        lock (_lock)
        {
            var index = _named.FindIndex(n => n.Name == name);
            if (index >= 0)
            {
                old = _named[index].Handle;
                _named[index] = (name, handle);
            }
            else
            {
                _named.Insert(0, (name, handle));
            }
        }

        old?.Dispose();
    }

    /// <summary>Closes the descriptor named <paramref name="name"/>; false when there is none.</summary>
    public bool Close(string name)
    {
        SafeFileHandle handle;
        lock (_lock)
        {
            var index = _named.FindIndex(n => n.Name == name);
            if (index < 0)
            {
                return false;
            }

            handle = _named[index].Handle;
            _named.RemoveAt(index);
        }

        handle.Dispose();
        return true;
    }

    /// <summary>Adds <paramref name="handle"/> to set <paramref name="fdsetId"/> (made when missing), or to a new set with the lowest free id.</summary>
    /// <returns>The set's id.</returns>
    public long Add(SafeFileHandle handle, long? fdsetId, string? opaque)
    {
        lock (_lock)
        {
            var id = fdsetId ?? LowestFreeId();
            if (!_sets.TryGetValue(id, out var entries))
            {
                _sets[id] = entries = [];
            }

            entries.Insert(0, new FdSetEntry(handle, opaque));
            return id;
        }
    }

    /// <summary>The sets, highest id first, each with its descriptors oldest first (as <c>query-fdsets</c> lists them).</summary>
    public List<(long Id, List<FdSetEntry> Entries)> Sets()
    {
        lock (_lock)
        {
            return [.. _sets.Reverse().Select(set => (set.Key, Enumerable.Reverse(set.Value).ToList()))];
        }
    }

    /// <summary>
    /// Marks descriptor <paramref name="fd"/> of set <paramref name="fdsetId"/> removed, or every one
    /// of it when null; as QEMU, the removed ones are closed only while the machine runs.
    /// </summary>
    /// <returns>False when there is no such set, or no such descriptor in it.</returns>
    public bool Remove(long fdsetId, long? fd, bool machineRunning)
    {
        lock (_lock)
        {
            if (!_sets.TryGetValue(fdsetId, out var entries))
            {
                return false;
            }

            var found = false;
            foreach (var entry in entries)
            {
                if (fd is null || entry.Fd == fd)
                {
                    entry.Removed = found = true;
                    if (fd is not null)
                    {
                        break;
                    }
                }
            }

            if (fd is not null && !found)
            {
                return false;
            }

            if (machineRunning)
            {
                CleanUp(fdsetId, entries, closeAll: false);
            }

            return true;
        }
    }

    /// <summary>
    /// The last client disconnected: while the machine runs, QEMU closes the descriptors of every
    /// set (none is in use by a device here), and drops the emptied sets.
    /// </summary>
    public void ClientsGone(bool machineRunning)
    {
        lock (_lock)
        {
            foreach (var (id, entries) in _sets.ToList())
            {
                if (machineRunning)
                {
                    CleanUp(id, entries, closeAll: true);
                }
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var (_, handle) in _named)
            {
                handle.Dispose();
            }

            _named.Clear();
            foreach (var (id, entries) in _sets.ToList())
            {
                CleanUp(id, entries, closeAll: true);
            }
        }
    }

    /// <summary>Closes the removed descriptors of a set (all with <paramref name="closeAll"/>) and drops it once empty. Call under the lock.</summary>
    private void CleanUp(long id, List<FdSetEntry> entries, bool closeAll)
    {
        foreach (var entry in entries.Where(e => closeAll || e.Removed).ToList())
        {
            entry.Handle.Dispose();
            entries.Remove(entry);
        }

        if (entries.Count == 0)
        {
            _sets.Remove(id);
        }
    }

    /// <summary>The lowest id from 0 up that no set has. Call under the lock.</summary>
    private long LowestFreeId()
    {
        long id = 0;
        foreach (var key in _sets.Keys)
        {
            if (key != id)
            {
                break;
            }

            id++;
        }

        return id;
    }
}
