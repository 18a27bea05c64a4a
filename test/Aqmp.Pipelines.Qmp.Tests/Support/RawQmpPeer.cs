using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Tests.Support;

/// <summary>A QMP peer on a bare socket: lines of JSON in and out, nothing interpreted.</summary>
internal sealed class RawQmpPeer : IAsyncDisposable
{
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    private RawQmpPeer(Socket socket)
    {
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public static async Task<RawQmpPeer> ConnectAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path)).Bounded();
            return new RawQmpPeer(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public async Task<JsonElement> ReadAsync()
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        var line = await _reader.ReadLineAsync(bound.Token) ?? throw new EndOfStreamException("The simulator closed the connection.");
        using var document = JsonDocument.Parse(line);
        return document.RootElement.Clone();
    }

    public Task SendAsync(string json) => SendRawAsync(json + "\n");

    /// <summary>Sends text exactly as given (no newline added).</summary>
    public async Task SendRawAsync(string text)
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(text), bound.Token);
        await _stream.FlushAsync(bound.Token);
    }

    /// <summary>Reads until the peer closes the connection (end of stream or reset), skipping what it sends; fails when it does not close within the bound.</summary>
    public async Task ClosesAsync()
    {
        using var bound = new CancellationTokenSource(TestTimeouts.Default);
        try
        {
            while (await _reader.ReadLineAsync(bound.Token) is not null)
            {
            }
        }
        catch (IOException)
        {
            // A reset is a close too.
        }
    }

    public async Task<JsonElement> ExecuteAsync(string command, int id, string? arguments = null)
    {
        var argumentsMember = arguments is null ? string.Empty : $",\"arguments\":{arguments}";
        await SendAsync($"{{\"execute\":\"{command}\"{argumentsMember},\"id\":{id}}}");
        return await ReadAsync();
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        return _stream.DisposeAsync();
    }
}
