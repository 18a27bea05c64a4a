using System.Net.Sockets;
using BenchmarkDotNet.Attributes;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>
/// Request/response echo over a real loopback socket (Unix-domain or TCP): the client keeps
/// <see cref="Window"/> requests of <see cref="LineLength"/> bytes (LF included) outstanding until
/// <see cref="RoundTrips"/> replies have come back. One reported operation is one round trip
/// (<c>OperationsPerInvoke</c>), so Mean is time per round trip and Allocated is per round trip.
/// </summary>
/// <remarks>
/// Both clients send the first request, then send a new one for each reply received while fewer
/// than <see cref="Window"/> are outstanding (one round trip of ramp-up per operation). Each reply
/// must equal its request byte for byte, in order; a mismatch, a missing reply or an extra reply
/// throws. Connections are made once per benchmark case and closed in <c>[GlobalCleanup]</c>.
/// </remarks>
[Config(typeof(EchoConfig))]
public class EndToEndEchoBenchmarks
{
    /// <summary>Round trips per invocation.</summary>
    public const int RoundTrips = 4096;

    /// <summary>Request (and reply) line length including the LF.</summary>
    public const int LineLength = 64;

    private readonly EchoRequests _requests = new(LineLength);
    private readonly byte[] _receiveBuffer = new byte[64 * 1024];

    private Socket? _rawClient;
    private Socket? _rawServer;
    private Task _rawServerLoop = Task.CompletedTask;
    private EchoServerSession? _serverSession;
    private EchoClientSession? _clientSession;

    /// <summary>The socket family.</summary>
    [ParamsAllValues]
    public TransportKind Transport { get; set; }

    /// <summary>Requests kept outstanding.</summary>
    [Params(1, 64)]
    public int Window { get; set; }

    /// <summary>Two raw sockets; the server side runs an echo loop.</summary>
    [GlobalSetup(Target = nameof(RawEcho))]
    public async Task SetupRaw()
    {
        (_rawClient, _rawServer) = await Loopback.ConnectPairAsync(Transport);
        var server = _rawServer;
        _rawServerLoop = Task.Run(() => RunRawEchoServerAsync(server));
    }

    /// <summary>Two sessions: the server listens and accepts, the client connects.</summary>
    [GlobalSetup(Target = nameof(SessionEcho))]
    public async Task SetupSession()
    {
        _serverSession = new EchoServerSession(LineLength);
        var bound = await _serverSession.StartServerAsync(Loopback.NewEndPoint(Transport));
        var accepted = _serverSession.AcceptAsync();
        _clientSession = new EchoClientSession(_requests);
        await _clientSession.ConnectAsync(bound);
        await accepted;
    }

    /// <summary>Closes whatever the set-up opened.</summary>
    [GlobalCleanup]
    public async Task Cleanup()
    {
        Loopback.Close(_rawClient);
        await _rawServerLoop;
        Loopback.Close(_rawServer);
        await Task.WhenAll(DisposeAsync(_clientSession), DisposeAsync(_serverSession));

        static Task DisposeAsync(IAsyncDisposable? session) => session?.DisposeAsync().AsTask() ?? Task.CompletedTask;
    }

    /// <summary>Baseline: plain sockets with reusable buffers on both sides; the server echoes whatever arrives.</summary>
    /// <returns>The replies received.</returns>
    [Benchmark(Baseline = true, OperationsPerInvoke = RoundTrips)]
    public async Task<int> RawEcho()
    {
        var socket = _rawClient!;
        using var watchdog = new Watchdog(() => Loopback.Close(socket));
        var wire = _requests.Wire.AsMemory();
        long receivedBytes = 0;
        var received = 0;
        var sent = 1;
        try
        {
            await Loopback.SendAllAsync(socket, wire[..LineLength]);
            while (received < RoundTrips)
            {
                var count = await socket.ReceiveAsync(_receiveBuffer.AsMemory(), SocketFlags.None);
                if (count == 0)
                {
                    throw new EndOfStreamException($"The server closed after {received} of {RoundTrips} replies.");
                }

                if (!_requests.MatchesWire(receivedBytes, _receiveBuffer.AsSpan(0, count)))
                {
                    throw new InvalidDataException($"The replies after byte {receivedBytes} do not match the requests.");
                }

                receivedBytes += count;
                received = (int)(receivedBytes / LineLength);
                if (received > sent)
                {
                    throw new InvalidDataException($"{received} replies to {sent} requests.");
                }

                // Refill the window with one send of consecutive requests.
                var more = Math.Min(RoundTrips - sent, received + Window - sent);
                if (more > 0)
                {
                    var start = (sent % EchoRequests.Distinct) * LineLength;
                    await Loopback.SendAllAsync(socket, wire.Slice(start, more * LineLength));
                    sent += more;
                }
            }
        }
        catch (Exception ex) when (watchdog.Fired)
        {
            throw Watchdog.Stalled($"{received} of {RoundTrips} replies", ex);
        }

        if (receivedBytes != (long)RoundTrips * LineLength)
        {
            throw new InvalidDataException($"Received {receivedBytes} bytes, expected {(long)RoundTrips * LineLength}.");
        }

        return received;
    }

    /// <summary>A <c>PipeProtocol</c> client (<c>SendAsync</c>, replies in <c>OnMessageAsync</c>) against a <c>PipeProtocol</c> echo server (<c>OnMessageAsync</c> → <c>SendAsync</c>).</summary>
    /// <returns>The replies received.</returns>
    [Benchmark(OperationsPerInvoke = RoundTrips)]
    public async Task<int> SessionEcho()
    {
        var client = _clientSession!;
        await client.RunAsync(RoundTrips, Window);
        if (client.Received != RoundTrips)
        {
            throw new InvalidDataException($"Received {client.Received} replies, expected {RoundTrips}.");
        }

        return client.Received;
    }

    private async Task RunRawEchoServerAsync(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var count = await socket.ReceiveAsync(buffer.AsMemory(), SocketFlags.None);
                if (count == 0)
                {
                    return;
                }

                await Loopback.SendAllAsync(socket, buffer.AsMemory(0, count));
            }
        }
        catch (SocketException)
        {
            // The client went away.
        }
    }

    /// <summary>The echo benchmarks' configuration: thousands of round trips per second.</summary>
    internal sealed class EchoConfig : EndToEndConfig
    {
        public EchoConfig()
        {
            AddColumn(new RateColumn("kRT/s", "Thousands of round trips per second (Mean is per round trip)", _ => 1e-3, "N1"));
        }
    }
}
