using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// A bare listening Unix-domain socket standing in for a hostile server: what it accepts is a
/// <see cref="HostileConnection"/> that writes exactly the bytes a test tells it to.
/// </summary>
internal sealed class HostileListener : IDisposable
{
    private readonly Socket _listener;

    private HostileListener(Socket listener, UnixDomainSocketEndPoint endPoint)
    {
        _listener = listener;
        EndPoint = endPoint;
    }

    public UnixDomainSocketEndPoint EndPoint { get; }

    /// <summary>Listens on a fresh socket path from <paramref name="socketFiles"/>.</summary>
    public static HostileListener Listen(SocketFiles socketFiles)
    {
        var endPoint = socketFiles.NewEndPoint();
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(endPoint);
        socket.Listen(8);
        return new HostileListener(socket, endPoint);
    }

    /// <summary>Accepts the next connection, bounded by the test timeout.</summary>
    public async Task<HostileConnection> AcceptAsync()
        => new(await _listener.AcceptAsync().WaitAsync(TestTimeouts.Default).ConfigureAwait(false));

    /// <summary>
    /// Connects <paramref name="client"/> to this listener and plays a well-behaved QMP server's
    /// negotiation (greeting, then the <c>qmp_capabilities</c> reply); returns once the client runs.
    /// </summary>
    public async Task<HostileConnection> ConnectQmpAsync(QmpClient client)
    {
        var connecting = client.ConnectAsync(EndPoint);
        var peer = await AcceptAsync().ConfigureAwait(false);
        try
        {
            await peer.NegotiateQmpAsync().ConfigureAwait(false);
            await connecting.Bounded().ConfigureAwait(false);
            return peer;
        }
        catch
        {
            peer.Dispose();
            throw;
        }
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>How a flood ended: how many bytes the kernel accepted, and the error that stopped it (null when it ran to its end).</summary>
internal sealed record FloodResult(long BytesWritten, SocketError? Error, TimeSpan Elapsed);

/// <summary>How the peer saw the connection end: bytes it read from the client meanwhile, and "end of stream" or the socket error.</summary>
internal sealed record PeerEnd(long BytesReceived, string How);

/// <summary>
/// The accepted end of a hostile peer's connection: writes raw bytes, floods, reads the client's
/// lines, and sees how the client ends the connection. Every operation is bounded.
/// </summary>
internal sealed class HostileConnection(Socket socket) : IDisposable
{
    /// <summary>The greeting a QEMU 9.2.1 would send.</summary>
    public const string GreetingJson = """{"QMP":{"version":{"qemu":{"micro":1,"minor":2,"major":9},"package":"v9.2.1"},"capabilities":["oob"]}}""";

    private byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    public Socket Socket => socket;

    /// <summary>A success reply line (no line feed) for the command whose raw JSON id is <paramref name="idJson"/>.</summary>
    public static string ReturnJson(string idJson, string valueJson = "{}") => $$"""{"return":{{valueJson}},"id":{{idJson}}}""";

    /// <summary>Writes <paramref name="bytes"/> exactly.</summary>
    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        while (!bytes.IsEmpty)
        {
            var sent = await socket.SendAsync(bytes, SocketFlags.None, bound.Token).ConfigureAwait(false);
            bytes = bytes[sent..];
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8, exactly (no line feed added).</summary>
    public Task SendRawAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    /// <summary>Writes each line followed by a line feed, in one send.</summary>
    public Task SendLinesAsync(params string[] lines) => SendRawAsync(string.Concat(lines.Select(line => line + "\n")));

    /// <summary>
    /// Writes up to <paramref name="maximumBytes"/> bytes of <paramref name="fill"/> (after
    /// <paramref name="prefix"/>), reusing one 64 KiB buffer, as fast as the socket takes them,
    /// until done or until a send fails because the client closed or reset the connection.
    /// </summary>
    /// <exception cref="TimeoutException">The socket stopped taking bytes and the client never closed it.</exception>
    public async Task<FloodResult> FloodAsync(long maximumBytes, byte fill = (byte)'x', ReadOnlyMemory<byte> prefix = default)
    {
        var chunk = new byte[64 * 1024];
        chunk.AsSpan().Fill(fill);
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        var clock = Stopwatch.StartNew();
        long written = 0;
        try
        {
            while (!prefix.IsEmpty)
            {
                var sent = await socket.SendAsync(prefix, SocketFlags.None, bound.Token).ConfigureAwait(false);
                prefix = prefix[sent..];
                written += sent;
            }

            while (written < maximumBytes)
            {
                var size = (int)Math.Min(chunk.Length, maximumBytes - written);
                written += await socket.SendAsync(chunk.AsMemory(0, size), SocketFlags.None, bound.Token).ConfigureAwait(false);
            }

            return new FloodResult(written, null, clock.Elapsed);
        }
        catch (SocketException ex)
        {
            return new FloodResult(written, ex.SocketErrorCode, clock.Elapsed);
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested)
        {
            throw new TimeoutException($"The flood stalled after {written} bytes and the client never closed the connection.");
        }
    }

    /// <summary>Reads the client's next line (terminator stripped).</summary>
    /// <exception cref="EndOfStreamException">The client closed first.</exception>
    public async Task<string> ReadLineAsync(CancellationToken cancellationToken = default)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(TestTimeouts.Default);
        while (true)
        {
            var lineFeed = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (lineFeed >= 0)
            {
                var line = Encoding.UTF8.GetString(_buffer, _start, lineFeed - _start).TrimEnd('\r');
                _start = lineFeed + 1;
                return line;
            }

            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }

            var read = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, bound.Token).ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException($"The client closed the connection ({_end - _start} bytes left without a line feed).");
            }

            _end += read;
        }
    }

    /// <summary>Reads the client's next line as a QMP command: its name and its id as raw JSON.</summary>
    public async Task<(string Name, string IdJson)> ReadCommandAsync(CancellationToken cancellationToken = default)
    {
        var line = await ReadLineAsync(cancellationToken).ConfigureAwait(false);
        using var document = JsonDocument.Parse(line);
        var root = document.RootElement;
        var name = root.GetProperty("execute").GetString() ?? throw new InvalidDataException($"Not a command: {line}");
        return (name, root.GetProperty("id").GetRawText());
    }

    /// <summary>Sends the greeting, reads <c>qmp_capabilities</c> and answers it.</summary>
    public async Task NegotiateQmpAsync()
    {
        await SendLinesAsync(GreetingJson).ConfigureAwait(false);
        var (name, id) = await ReadCommandAsync().ConfigureAwait(false);
        Assert.That(name, Is.EqualTo("qmp_capabilities"));
        await SendLinesAsync(ReturnJson(id)).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads until the client closes (end of stream) or resets the connection, then closes this
    /// end too, as a well-behaved peer does. Bounded by the test timeout.
    /// </summary>
    public async Task<PeerEnd> ReadUntilClosedAsync()
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        long received = _end - _start;
        _start = _end = 0;
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(_buffer, SocketFlags.None, bound.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    return new PeerEnd(received, "end of stream");
                }

                received += read;
            }
        }
        catch (SocketException ex)
        {
            return new PeerEnd(received, ex.SocketErrorCode.ToString());
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested)
        {
            throw new TimeoutException($"The client kept the connection open for {TestTimeouts.Default} ({received} bytes received meanwhile).");
        }
        finally
        {
            socket.Dispose();
        }
    }

    public void Dispose() => socket.Dispose();
}
