using System.Net.Sockets;
using System.Text;

namespace Aqmp.Pipelines.Benchmarks.Qmp;

/// <summary>
/// QMP by hand, as a floor for the client: a blocking Unix socket, one reusable receive buffer,
/// requests as constant bytes, replies found by searching for CRLF and compared byte for byte.
/// </summary>
internal sealed class RawQmpConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly byte[] _queryStatus = "{\"execute\":\"query-status\"}\n"u8.ToArray();
    private byte[] _expectedStatus = [];
    private int _start;
    private int _end;

    private RawQmpConnection(Socket socket) => _socket = socket;

    /// <summary>Connects, reads the greeting, negotiates capabilities and records the first <c>query-status</c> reply.</summary>
    /// <param name="socketPath">QEMU's QMP socket.</param>
    /// <returns>The negotiated connection.</returns>
    /// <exception cref="InvalidOperationException">The server did not answer as QEMU does.</exception>
    public static RawQmpConnection Connect(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var connection = new RawQmpConnection(socket);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            Expect("greeting", connection.ReadLine().StartsWith("{\"QMP\": {"u8));
            connection.SendAll("{\"execute\":\"qmp_capabilities\"}\n"u8);
            Expect("qmp_capabilities reply", connection.ReadLine().SequenceEqual("{\"return\": {}}"u8));
            connection.SendAll(connection._queryStatus);
            var status = connection.ReadLine();
            Expect("query-status reply", status.StartsWith("{\"return\": {"u8) && status.IndexOf("\"status\": \"running\""u8) >= 0);
            connection._expectedStatus = status.ToArray();
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>One <c>query-status</c> round trip; throws unless the reply equals the first one.</summary>
    public void QueryStatus()
    {
        SendAll(_queryStatus);
        var reply = ReadLine();
        if (!reply.SequenceEqual(_expectedStatus))
        {
            throw new InvalidOperationException($"Unexpected query-status reply: {Encoding.UTF8.GetString(reply)}");
        }
    }

    /// <inheritdoc />
    public void Dispose() => _socket.Dispose();

    private static void Expect(string what, bool condition)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"Unexpected {what} from QEMU.");
        }
    }

    private void SendAll(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[_socket.Send(bytes)..];
        }
    }

    /// <summary>The next line without its CRLF; valid until the next call.</summary>
    private ReadOnlySpan<byte> ReadLine()
    {
        while (true)
        {
            var index = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n"u8);
            if (index >= 0)
            {
                var line = _buffer.AsSpan(_start, index);
                _start += index + 2;
                return line;
            }

            if (_start == _end)
            {
                _start = _end = 0;
            }
            else if (_start > 0)
            {
                _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                throw new InvalidOperationException($"A QMP line longer than {_buffer.Length} bytes.");
            }

            var received = _socket.Receive(_buffer.AsSpan(_end));
            if (received == 0)
            {
                throw new EndOfStreamException("QEMU closed the connection.");
            }

            _end += received;
        }
    }
}
