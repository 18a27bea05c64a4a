using System.Net;
using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>How a scripted raw peer goes away.</summary>
public enum PeerDeath
{
    /// <summary>
    /// The peer ends its sending direction (<c>shutdown(SHUT_WR)</c>: a FIN) over a Unix-domain
    /// socket; the session reads end-of-stream. The peer's socket is released once the session
    /// has reacted: closing it at once with bytes the peer has not read would turn the close into
    /// a reset on both AF_UNIX and TCP, and make the expected root cause a race.
    /// </summary>
    Fin,

    /// <summary>
    /// The peer resets the connection: <c>SO_LINGER</c> on with a zero timeout, then close, over TCP
    /// loopback (a real RST). AF_UNIX has no reset: it ignores a zero linger and reports
    /// <c>ECONNRESET</c> only when the closing side left bytes unread.
    /// </summary>
    Reset,
}

/// <summary>
/// A bare listening socket (Unix-domain or TCP loopback) whose accepted connections a test scripts
/// byte by byte: write exact bytes, read lines, wait for bytes to arrive unread, then die by
/// <see cref="PeerDeath"/>. Every wait is bounded by <see cref="TestTimeouts.Default"/>.
/// </summary>
internal sealed class RawSocketPeer : IDisposable
{
    private readonly Socket _listener;

    private RawSocketPeer(Socket listener)
    {
        _listener = listener;
        EndPoint = listener.LocalEndPoint!;
    }

    /// <summary>Where the peer listens.</summary>
    public EndPoint EndPoint { get; }

    /// <summary>Listens where <paramref name="death"/> can happen: Unix-domain for a FIN, TCP loopback for a reset.</summary>
    public static RawSocketPeer ListenFor(PeerDeath death, SocketFiles socketFiles)
        => death == PeerDeath.Reset ? ListenTcp() : ListenUnix(socketFiles);

    /// <summary>Listens on a fresh Unix-domain socket path.</summary>
    public static RawSocketPeer ListenUnix(SocketFiles socketFiles)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(socketFiles.NewEndPoint());
        socket.Listen(8);
        return new RawSocketPeer(socket);
    }

    /// <summary>Listens on TCP loopback, any port.</summary>
    public static RawSocketPeer ListenTcp()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(8);
        return new RawSocketPeer(socket);
    }

    /// <summary>Accepts the next connection.</summary>
    public async Task<RawConnection> AcceptAsync() => new(await _listener.AcceptAsync().Bounded().ConfigureAwait(false));

    public void Dispose() => _listener.Dispose();
}

/// <summary>One accepted connection of a <see cref="RawSocketPeer"/>.</summary>
internal sealed class RawConnection(Socket socket) : IDisposable
{
    private readonly byte[] _chunk = new byte[64 * 1024];
    private readonly MemoryStream _pending = new();

    public Socket Socket { get; } = socket;

    /// <summary>Writes <paramref name="text"/> as UTF-8, exactly.</summary>
    public async Task WriteAsync(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var sent = 0;
        while (sent < bytes.Length)
        {
            sent += await Socket.SendAsync(bytes.AsMemory(sent)).AsTask().Bounded().ConfigureAwait(false);
        }
    }

    /// <summary>Reads the next '\n'-terminated line (terminator stripped).</summary>
    /// <exception cref="EndOfStreamException">The connection ended first.</exception>
    public async Task<string> ReadLineAsync()
    {
        while (true)
        {
            var buffer = _pending.GetBuffer();
            var length = (int)_pending.Length;
            var lineFeed = Array.IndexOf(buffer, (byte)'\n', 0, length);
            if (lineFeed >= 0)
            {
                var line = Encoding.UTF8.GetString(buffer, 0, lineFeed);
                var rest = buffer.AsSpan(lineFeed + 1, length - lineFeed - 1).ToArray();
                _pending.SetLength(0);
                _pending.Write(rest);
                return line;
            }

            var read = await Socket.ReceiveAsync(_chunk.AsMemory()).AsTask().Bounded().ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException($"The session closed the connection ({length} bytes without a line feed).");
            }

            _pending.Write(_chunk, 0, read);
        }
    }

    /// <summary>Reads <paramref name="count"/> lines.</summary>
    public async Task<List<string>> ReadLinesAsync(int count)
    {
        var lines = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            lines.Add(await ReadLineAsync().ConfigureAwait(false));
        }

        return lines;
    }

    /// <summary>Reads at least <paramref name="count"/> bytes (or until the stream ends) and returns them.</summary>
    public async Task<byte[]> ReadAtLeastAsync(int count)
    {
        while (_pending.Length < count)
        {
            var read = await Socket.ReceiveAsync(_chunk.AsMemory()).AsTask().Bounded().ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            _pending.Write(_chunk, 0, read);
        }

        var bytes = _pending.ToArray();
        _pending.SetLength(0);
        return bytes;
    }

    /// <summary>Reads until the session closes its side; returns what was left, as UTF-8.</summary>
    public async Task<string> ReadToEndAsync()
    {
        while (true)
        {
            var read = await Socket.ReceiveAsync(_chunk.AsMemory()).AsTask().Bounded().ConfigureAwait(false);
            if (read == 0)
            {
                var rest = Encoding.UTF8.GetString(_pending.GetBuffer(), 0, (int)_pending.Length);
                _pending.SetLength(0);
                return rest;
            }

            _pending.Write(_chunk, 0, read);
        }
    }

    /// <summary>Waits, without reading, until at least <paramref name="count"/> bytes wait unread in the socket.</summary>
    public async Task WaitUntilUnreadAsync(int count)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        while (Socket.Available < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Only {Socket.Available} of {count} bytes arrived.");
            }

            await Task.Delay(2).ConfigureAwait(false);
        }
    }

    /// <summary>Goes away: a FIN (shutdown of the sending side, socket kept until disposed) or a reset (zero linger, close).</summary>
    public void Die(PeerDeath death)
    {
        if (death == PeerDeath.Reset)
        {
            Socket.LingerState = new LingerOption(true, 0);
            Socket.Close();
        }
        else
        {
            Socket.Shutdown(SocketShutdown.Send);
        }
    }

    public void Dispose()
    {
        Socket.Dispose();
        _pending.Dispose();
    }
}
