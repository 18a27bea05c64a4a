using System.Runtime.InteropServices;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// Descriptors to send with one message: their handles are referenced from creation until
/// <see cref="Release"/> (after their send, or when the message is not sent), so that a caller
/// closing a handle meanwhile cannot close, or reuse, the descriptor under the send.
/// </summary>
internal sealed class OutboundDescriptors
{
    private readonly SafeHandle[] _handles;
    private int _released;

    private OutboundDescriptors(SafeHandle[] handles, int[] descriptors) => (_handles, Descriptors) = (handles, descriptors);

    /// <summary>The descriptor numbers, in order.</summary>
    public int[] Descriptors { get; }

    /// <summary>The position in the outbound byte stream of the first byte of the message they go with (set when it is framed).</summary>
    public long Offset { get; set; }

    /// <summary>Whether they were attached to their message's first byte (it was framed); until then the sender releases them if the message is not sent.</summary>
    public bool IsAttached { get; set; }

    /// <summary>References every handle of <paramref name="handles"/>.</summary>
    /// <exception cref="ArgumentException">None, more than the system passes at once, or a null one.</exception>
    /// <exception cref="ObjectDisposedException">A handle is closed or invalid.</exception>
    public static OutboundDescriptors Reference(ReadOnlySpan<SafeHandle> handles)
    {
        if (handles.IsEmpty || handles.Length > UnixDescriptorInterop.MaximumDescriptors)
        {
            throw new ArgumentException($"Between 1 and {UnixDescriptorInterop.MaximumDescriptors} descriptors go with one message; {handles.Length} were given.", nameof(handles));
        }

        var referenced = new SafeHandle[handles.Length];
        var descriptors = new int[handles.Length];
        var count = 0;
        try
        {
            for (; count < handles.Length; count++)
            {
                var handle = handles[count] ?? throw new ArgumentException("A descriptor handle is null.", nameof(handles));
                if (handle.IsInvalid)
                {
                    throw new ObjectDisposedException(handle.GetType().Name, "A descriptor handle to send is invalid.");
                }

                var added = false;
                handle.DangerousAddRef(ref added);
                referenced[count] = handle;
                descriptors[count] = (int)handle.DangerousGetHandle();
            }
        }
        catch
        {
            for (var i = 0; i < count; i++)
            {
                referenced[i].DangerousRelease();
            }

            throw;
        }

        return new OutboundDescriptors(referenced, descriptors);
    }

    /// <summary>Lets go of the handles. Idempotent.</summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        foreach (var handle in _handles)
        {
            handle.DangerousRelease();
        }
    }
}
