using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// A listening Unix-domain socket bound to a filesystem path on Linux, bound through libc so that
/// the runtime never learns the bound file name (its <see cref="Socket.Dispose()"/> would unlink
/// the path, whoever's file is there by then). The file is removed at disposal only while it is
/// still the one this bind created: same device and inode, and a socket.
/// </summary>
internal sealed class UnixSocketFile : IDisposable
{
    private const int AfUnix = 1;
    private const int SunPathLength = 108;
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxTypeAndIno = 0x1 | 0x100;
    private const int StatxSize = 256;
    private const int FDupFdCloExec = 1030;
    private const int EAddrInUse = 98;
    private const int ENoEnt = 2;
    private const ushort FileTypeMask = 0xF000;
    private const ushort SocketFileType = 0xC000;

    private readonly string _path;
    private readonly FileIdentity _identity;

    private UnixSocketFile(Socket socket, string path, FileIdentity identity)
    {
        Socket = socket;
        _path = path;
        _identity = identity;
    }

    /// <summary>The listening socket; it owns its descriptor and has no bound file name of the runtime's.</summary>
    public Socket Socket { get; }

    /// <summary>Whether the file at <paramref name="path"/> is a socket; null when there is none, or on systems other than Linux.</summary>
    public static bool? IsSocket(string path)
        => OperatingSystem.IsLinux() && TryIdentify(path, out var identity) ? identity.IsSocket : null;

    /// <summary>Whether <paramref name="endPoint"/> is bound through libc: on Linux, a filesystem path (not an abstract name).</summary>
    public static bool Handles(UnixDomainSocketEndPoint endPoint)
        => OperatingSystem.IsLinux() && endPoint.ToString() is { Length: > 0 } path && path[0] is not ('\0' or '@');

    /// <summary>Binds a new socket to <paramref name="endPoint"/>'s path and starts listening.</summary>
    /// <param name="endPoint">The path.</param>
    /// <param name="backlog">How many not-yet-accepted connections the system queues.</param>
    /// <param name="replaceStaleSocket">
    /// Whether a socket file already at the path that no listener answers (a connection to it is
    /// refused: what a crashed server leaves) is removed and the path bound again.
    /// </param>
    /// <exception cref="SocketException">
    /// <see cref="SocketError.AddressAlreadyInUse"/> when something is at the path (the message names
    /// the path and says whether it is a socket, and when stale sockets are replaced, that a server
    /// answers on it); another code when the path cannot be bound.
    /// </exception>
    public static UnixSocketFile Bind(UnixDomainSocketEndPoint endPoint, int backlog, bool replaceStaleSocket = false)
    {
        var path = endPoint.ToString();
        var address = SockAddrUn(path);
        var fullPath = Path.GetFullPath(path); // where the file is, whatever the working directory is later

        // The runtime creates the socket (flags right on every architecture); a CLOEXEC duplicate
        // of its descriptor becomes the listener's only owner, and the original closes at once.
        using var raw = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        if (bind(raw.SafeHandle, address, address.Length) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EAddrInUse && replaceStaleSocket && RemoveIfStale(endPoint, fullPath, path))
            {
                errno = bind(raw.SafeHandle, address, address.Length) == 0 ? 0 : Marshal.GetLastPInvokeError();
            }

            if (errno != 0)
            {
                throw BindFailure(path, errno);
            }
        }

        if (!TryIdentify(fullPath, out var identity) || !identity.IsSocket)
        {
            throw new SocketException((int)SocketError.AddressNotAvailable, $"Cannot listen on '{path}': the socket file vanished right after binding.");
        }

        Socket? socket = null;
        try
        {
            var fd = fcntl(raw.SafeHandle, FDupFdCloExec, 0);
            if (fd < 0)
            {
                throw new SocketException((int)SocketError.TooManyOpenSockets, $"Cannot listen on '{path}': {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}.");
            }

            socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
            socket.Listen(backlog);
            return new UnixSocketFile(socket, fullPath, identity);
        }
        catch
        {
            RemoveIfOurs(fullPath, identity);
            socket?.Dispose();
            throw;
        }
    }

    /// <summary>Removes the socket file if it is still this listener's, then closes the socket.</summary>
    public void Dispose()
    {
        RemoveIfOurs(_path, _identity);
        Socket.Dispose();
    }

    private static void RemoveIfOurs(string path, FileIdentity identity)
    {
        if (TryIdentify(path, out var now) && now == identity)
        {
            _ = unlink(path);
        }
    }

    /// <summary>
    /// Removes the socket file at the path when no listener answers on it (a connection is refused)
    /// and it is still the same file afterwards; false when it is not a socket, or a server answers.
    /// </summary>
    /// <exception cref="SocketException"><see cref="SocketError.AddressAlreadyInUse"/>: a server answers on the path.</exception>
    private static bool RemoveIfStale(UnixDomainSocketEndPoint endPoint, string fullPath, string path)
    {
        if (!TryIdentify(fullPath, out var before) || !before.IsSocket)
        {
            return false;
        }

        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(endPoint);
                throw new SocketException((int)SocketError.AddressAlreadyInUse, $"Cannot listen on '{path}': a server is listening on it.");
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
            {
                // Nobody listens: the file is what a server that did not stop cleanly left behind.
            }
        }

        RemoveIfOurs(fullPath, before);
        return true;
    }

    private static SocketException BindFailure(string path, int errno)
    {
        if (errno != EAddrInUse)
        {
            var code = errno switch
            {
                1 or 13 => SocketError.AccessDenied,
                ENoEnt or 20 or 99 => SocketError.AddressNotAvailable,
                _ => SocketError.SocketError,
            };
            return new SocketException((int)code, $"Cannot listen on '{path}': {Marshal.GetPInvokeErrorMessage(errno)}.");
        }

        var message = TryIdentify(path, out var existing) && !existing.IsSocket
            ? $"Cannot listen on '{path}': it exists and is not a socket."
            : $"Cannot listen on '{path}': the address is in use (a socket file is already there; it is never removed on your behalf).";
        return new SocketException((int)SocketError.AddressAlreadyInUse, message);
    }

    private static byte[] SockAddrUn(string path)
    {
        var length = Encoding.UTF8.GetByteCount(path);
        if (length + 1 > SunPathLength)
        {
            throw new ArgumentException($"The Unix socket path '{path}' is longer than {SunPathLength - 1} bytes.", nameof(path));
        }

        var address = new byte[sizeof(ushort) + length + 1];
        BitConverter.TryWriteBytes(address.AsSpan(0, sizeof(ushort)), (ushort)AfUnix);
        Encoding.UTF8.GetBytes(path, address.AsSpan(sizeof(ushort)));
        return address;
    }

    private static bool TryIdentify(string path, out FileIdentity identity)
    {
        var buffer = new byte[StatxSize];
        if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxTypeAndIno, buffer) != 0)
        {
            identity = default;
            return false;
        }

        // struct statx is native-endian and laid out alike on every Linux architecture.
        var span = buffer.AsSpan();
        identity = new FileIdentity(
            DevMajor: MemoryMarshal.Read<uint>(span[136..]),
            DevMinor: MemoryMarshal.Read<uint>(span[140..]),
            Inode: MemoryMarshal.Read<ulong>(span[32..]),
            IsSocket: (MemoryMarshal.Read<ushort>(span[28..]) & FileTypeMask) == SocketFileType);
        return true;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int bind(SafeSocketHandle socket, byte[] address, int addressLength);

    [DllImport("libc", SetLastError = true)]
    private static extern int fcntl(SafeSocketHandle fd, int command, int argument);

    [DllImport("libc", SetLastError = true)]
    private static extern int statx(int directoryFd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);

    [DllImport("libc", SetLastError = true)]
    private static extern int unlink([MarshalAs(UnmanagedType.LPUTF8Str)] string path);

    /// <summary>What makes a file this one: device, inode, and that it is a socket.</summary>
    private readonly record struct FileIdentity(uint DevMajor, uint DevMinor, ulong Inode, bool IsSocket);
}
