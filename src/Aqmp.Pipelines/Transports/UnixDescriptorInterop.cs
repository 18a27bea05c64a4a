using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// <c>sendmsg</c> and <c>recvmsg</c> with <c>SCM_RIGHTS</c> control messages on a Linux stream
/// socket (LP64 layouts of <c>struct msghdr</c>, <c>iovec</c> and <c>cmsghdr</c>). Both calls never
/// block (<c>MSG_DONTWAIT</c>): a call that would block reports it and the caller waits for the socket.
/// </summary>
internal static unsafe partial class UnixDescriptorInterop
{
    /// <summary>The most descriptors Linux carries in one message (<c>SCM_MAX_FD</c>).</summary>
    public const int MaximumDescriptors = 253;

    /// <summary>Room for one <c>SCM_RIGHTS</c> message of <see cref="MaximumDescriptors"/> descriptors (<c>CMSG_SPACE</c>), rounded up.</summary>
    public const int ControlBufferSize = 1024 + 64;

    private const int SolSocket = 1;
    private const int ScmRights = 1;
    private const int MsgDontWait = 0x40;
    private const int MsgNoSignal = 0x4000;
    private const int MsgCmsgCloexec = 0x40000000;
    private const int EAgain = 11;
    private const int EIntr = 4;

    /// <summary>Whether descriptors can be passed on this operating system and architecture.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && IntPtr.Size == 8;

    /// <summary>
    /// Receives into <paramref name="buffer"/> and collects the descriptors that came with the bytes
    /// into <paramref name="descriptors"/> (closed on exec).
    /// </summary>
    /// <returns>The bytes received (0: the peer closed), or -1 when nothing is there yet.</returns>
    /// <exception cref="SocketException">The receive failed (a reset).</exception>
    public static int Receive(SafeSocketHandle socket, Span<byte> buffer, byte[] control, List<nint> descriptors)
    {
        var added = false;
        try
        {
            socket.DangerousAddRef(ref added);
            var fd = (int)socket.DangerousGetHandle();
            fixed (byte* data = buffer)
            fixed (byte* cmsg = control)
            {
                var iov = new IoVec { Base = data, Length = (nuint)buffer.Length };
                while (true)
                {
                    var header = new MsgHdr { Iov = &iov, IovLength = 1, Control = cmsg, ControlLength = (nuint)control.Length };
                    var received = RecvMsg(fd, &header, MsgDontWait | MsgCmsgCloexec);
                    if (received >= 0)
                    {
                        Collect(&header, descriptors);
                        return (int)received;
                    }

                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == EAgain)
                    {
                        return -1;
                    }

                    if (errno != EIntr)
                    {
                        throw new SocketException(errno);
                    }
                }
            }
        }
        finally
        {
            if (added)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>Sends the first byte of <paramref name="data"/> (at least one) with <paramref name="descriptors"/> attached.</summary>
    /// <returns>Whether it was sent; false when the socket's buffer is full (wait and try again).</returns>
    /// <exception cref="SocketException">The send failed.</exception>
    public static bool SendWithDescriptors(SafeSocketHandle socket, byte data, ReadOnlySpan<int> descriptors)
    {
        var payload = descriptors.Length * sizeof(int);
        var space = CmsgAlign(sizeof(CmsgHdr)) + CmsgAlign(payload);
        var control = stackalloc byte[space];
        new Span<byte>(control, space).Clear();
        var cmsg = (CmsgHdr*)control;
        cmsg->Length = (nuint)(CmsgAlign(sizeof(CmsgHdr)) + payload);
        cmsg->Level = SolSocket;
        cmsg->Type = ScmRights;
        descriptors.CopyTo(new Span<int>(control + CmsgAlign(sizeof(CmsgHdr)), descriptors.Length));

        var added = false;
        try
        {
            socket.DangerousAddRef(ref added);
            var fd = (int)socket.DangerousGetHandle();
            var iov = new IoVec { Base = &data, Length = 1 };
            while (true)
            {
                var header = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)space };
                var sent = SendMsg(fd, &header, MsgDontWait | MsgNoSignal);
                if (sent >= 0)
                {
                    return sent == 1;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == EAgain)
                {
                    return false;
                }

                if (errno != EIntr)
                {
                    throw new SocketException(errno);
                }
            }
        }
        finally
        {
            if (added)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>Closes a descriptor this process received and nobody took.</summary>
    public static void CloseDescriptor(nint descriptor) => Close((int)descriptor);

    private static void Collect(MsgHdr* header, List<nint> descriptors)
    {
        // With MSG_CTRUNC set the kernel closed the descriptors that did not fit; those that did are collected.
        var end = (byte*)header->Control + header->ControlLength;
        var cmsg = header->ControlLength >= (nuint)sizeof(CmsgHdr) ? (CmsgHdr*)header->Control : null;
        while (cmsg is not null)
        {
            if (cmsg->Level == SolSocket && cmsg->Type == ScmRights)
            {
                var data = (int*)((byte*)cmsg + CmsgAlign(sizeof(CmsgHdr)));
                var count = ((int)cmsg->Length - CmsgAlign(sizeof(CmsgHdr))) / sizeof(int);
                for (var i = 0; i < count; i++)
                {
                    descriptors.Add(data[i]);
                }
            }

            if (cmsg->Length < (nuint)sizeof(CmsgHdr))
            {
                break;
            }

            var next = (byte*)cmsg + CmsgAlign((int)cmsg->Length);
            cmsg = next + sizeof(CmsgHdr) <= end ? (CmsgHdr*)next : null;
        }
    }

    private static int CmsgAlign(int length) => (length + sizeof(nuint) - 1) & ~(sizeof(nuint) - 1);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint RecvMsg(int socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(int socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int descriptor);

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CmsgHdr
    {
        public nuint Length;
        public int Level;
        public int Type;
    }
}
