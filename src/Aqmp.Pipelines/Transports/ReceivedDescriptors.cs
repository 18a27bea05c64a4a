using Microsoft.Win32.SafeHandles;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// The descriptors a connection received and nobody has taken yet, each at the position in the
/// inbound byte stream of the first byte it arrived with. Taken by the range of the message they
/// arrived within; those left behind a range are closed. Thread-safe.
/// </summary>
internal sealed class ReceivedDescriptors
{
    private readonly Lock _lock = new();
    private readonly Queue<(long Offset, nint Descriptor)> _held = new(); // in stream order
    private bool _closed;

    /// <summary>How many descriptors are held (received, not taken, not closed).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _held.Count;
            }
        }
    }

    /// <summary>Holds <paramref name="descriptors"/>, received with the byte at <paramref name="offset"/>; closes them at once once closed.</summary>
    public void Add(long offset, List<nint> descriptors)
    {
        lock (_lock)
        {
            if (!_closed)
            {
                foreach (var descriptor in descriptors)
                {
                    _held.Enqueue((offset, descriptor));
                }

                return;
            }
        }

        foreach (var descriptor in descriptors)
        {
            UnixDescriptorInterop.CloseDescriptor(descriptor);
        }
    }

    /// <summary>
    /// Takes the descriptors that arrived with bytes in [<paramref name="start"/>, <paramref name="end"/>),
    /// in arrival order, as handles the caller owns; closes those that arrived before <paramref name="start"/>.
    /// </summary>
    public SafeFileHandle[] Take(long start, long end)
    {
        CloseBefore(start);
        List<SafeFileHandle>? taken = null;
        lock (_lock)
        {
            while (_held.TryPeek(out var held) && held.Offset < end)
            {
                _held.Dequeue();
                (taken ??= []).Add(new SafeFileHandle(held.Descriptor, ownsHandle: true));
            }
        }

        return taken?.ToArray() ?? [];
    }

    /// <summary>Closes the descriptors that arrived with bytes before <paramref name="end"/> (nobody took them).</summary>
    public void CloseBefore(long end)
    {
        while (true)
        {
            nint descriptor;
            lock (_lock)
            {
                if (!_held.TryPeek(out var held) || held.Offset >= end)
                {
                    return;
                }

                descriptor = _held.Dequeue().Descriptor;
            }

            UnixDescriptorInterop.CloseDescriptor(descriptor);
        }
    }

    /// <summary>Closes every descriptor held, and any received from now on. Idempotent.</summary>
    public void CloseAll()
    {
        lock (_lock)
        {
            _closed = true;
        }

        CloseBefore(long.MaxValue);
    }
}
