using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using Pipelines.Sockets.Unofficial;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>
/// A one-way stream of LF-terminated lines over a real loopback socket (Unix-domain or TCP):
/// one operation moves <see cref="StreamBytes"/> (32 MiB) = 32 MiB / <see cref="LineLength"/>
/// lines from a sender to a receiver and completes when the receiver has counted every line.
/// </summary>
/// <remarks>
/// <para>
/// Each benchmark is named <c>Sender_Receiver</c>. The receive paths are compared behind one
/// sender, a raw socket writing a pre-built buffer of the whole stream in one call
/// (<c>RawSend_*</c>); the send paths are compared in front of one receiver, the raw socket loop
/// (<c>*_RawReceive</c>). The baseline, <see cref="RawSend_RawReceive"/>, is the practical limit:
/// <see cref="Socket.ReceiveAsync(Memory{byte}, SocketFlags, CancellationToken)"/> into one
/// reusable 64 KiB buffer, frames counted with a span <c>IndexOf</c>.
/// </para>
/// <para>
/// Every receiver checks every line's length, and the operation checks the line count and the
/// total payload length, so a fast but wrong run throws. Connections are made once per benchmark
/// case in a targeted <c>[GlobalSetup]</c> and closed in <c>[GlobalCleanup]</c>.
/// </para>
/// </remarks>
[Config(typeof(StreamConfig))]
public class EndToEndStreamBenchmarks
{
    /// <summary>Bytes one operation moves, terminators included.</summary>
    public const int StreamBytes = 32 * 1024 * 1024;

    private byte[] _wire = [];
    private ReadOnlySequence<byte>[] _payloads = [];
    private ReadOnlyMemory<char>[] _chars = [];
    private readonly byte[] _receiveBuffer = new byte[64 * 1024];

    private Socket? _rawSender;
    private Socket? _rawReceiver;
    private LineSenderSession? _senderSession;
    private LineCounterSession? _receiverSession;
    private SocketConnection? _socketConnection;
    private PipeReader? _streamPipeReader;
    private PipeWriter? _streamPipeWriter;
    private StreamReader? _streamReader;
    private StreamWriter? _streamWriter;

    /// <summary>The socket family.</summary>
    [ParamsAllValues]
    public TransportKind Transport { get; set; }

    /// <summary>Line length including its LF.</summary>
    [Params(64, 4096)]
    public int LineLength { get; set; }

    private int Lines => StreamBytes / LineLength;

    // ---- set-up, one per benchmark --------------------------------------------------------------

    /// <summary>Raw socket pair.</summary>
    [GlobalSetup(Target = nameof(RawSend_RawReceive))]
    public async Task SetupRawRaw()
    {
        BuildWire();
        (_rawSender, _rawReceiver) = await Loopback.ConnectPairAsync(Transport);
    }

    /// <summary>Raw socket sender, session receiver (<c>OpenAsync(socket)</c>: the library's socket transport).</summary>
    [GlobalSetup(Target = nameof(RawSend_SessionReceive))]
    public async Task SetupRawSession()
    {
        BuildWire();
        (_rawSender, var server) = await Loopback.ConnectPairAsync(Transport);
        _receiverSession = new LineCounterSession(LineLength - 1);
        await _receiverSession.OpenAsync(server);
    }

    /// <summary>Raw socket sender, Pipelines.Sockets.Unofficial <see cref="SocketConnection"/> receiver with default options.</summary>
    [GlobalSetup(Target = nameof(RawSend_PipeReaderReceive))]
    public async Task SetupRawPipeReader()
    {
        BuildWire();
        (_rawSender, var server) = await Loopback.ConnectPairAsync(Transport);
        _socketConnection = SocketConnection.Create(server);
    }

    /// <summary>
    /// Raw socket sender, <see cref="PipeReader.Create(Stream, StreamPipeReaderOptions?)"/> over a
    /// <see cref="NetworkStream"/>: a pipe reader that receives inline in <c>ReadAsync</c>, with
    /// no adapter thread between the socket and the parse loop (64 KiB buffers, 16 KiB minimum read).
    /// </summary>
    [GlobalSetup(Target = nameof(RawSend_StreamPipeReaderReceive))]
    public async Task SetupRawStreamPipeReader()
    {
        BuildWire();
        (_rawSender, var server) = await Loopback.ConnectPairAsync(Transport);
        _streamPipeReader = PipeReader.Create(new NetworkStream(server, ownsSocket: true), new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024));
    }

    /// <summary>Raw socket sender, <see cref="StreamReader"/> over a <see cref="NetworkStream"/> (default buffer).</summary>
    [GlobalSetup(Target = nameof(RawSend_StreamReaderReceive))]
    public async Task SetupRawStreamReader()
    {
        BuildWire();
        (_rawSender, var server) = await Loopback.ConnectPairAsync(Transport);
        _streamReader = new StreamReader(new NetworkStream(server, ownsSocket: true), Encoding.UTF8);
    }

    /// <summary>Session sender (<c>OpenAsync(socket)</c>), raw socket receiver.</summary>
    [GlobalSetup(Target = nameof(SessionSend_RawReceive))]
    public async Task SetupSessionRaw()
    {
        BuildWire();
        BuildPayloads();
        (var client, _rawReceiver) = await Loopback.ConnectPairAsync(Transport);
        _senderSession = new LineSenderSession();
        await _senderSession.OpenAsync(client);
    }

    /// <summary>Session sender sending in bursts with <c>SendManyAsync</c>, raw socket receiver.</summary>
    [GlobalSetup(Target = nameof(SessionSendMany_RawReceive))]
    public Task SetupSessionManyRaw() => SetupSessionRaw();

    /// <summary>Hand-written pipe writer on a Pipelines.Sockets.Unofficial <see cref="SocketConnection"/> (its pump sends), raw socket receiver.</summary>
    [GlobalSetup(Target = nameof(PipeWriterSend_RawReceive))]
    public async Task SetupPipeWriterRaw()
    {
        BuildWire();
        BuildPayloads();
        (var client, _rawReceiver) = await Loopback.ConnectPairAsync(Transport);
        _socketConnection = SocketConnection.Create(client);
    }

    /// <summary>Hand-written pipe writer from <see cref="PipeWriter.Create(Stream, StreamPipeWriterOptions?)"/> over a <see cref="NetworkStream"/> (a flush writes to the socket inline), raw socket receiver.</summary>
    [GlobalSetup(Target = nameof(StreamPipeWriterSend_RawReceive))]
    public async Task SetupStreamPipeWriterRaw()
    {
        BuildWire();
        BuildPayloads();
        (var client, _rawReceiver) = await Loopback.ConnectPairAsync(Transport);
        _streamPipeWriter = PipeWriter.Create(new NetworkStream(client, ownsSocket: true));
    }

    /// <summary><see cref="StreamWriter"/> over a <see cref="NetworkStream"/> (default buffer), raw socket receiver.</summary>
    [GlobalSetup(Target = nameof(StreamWriterSend_RawReceive))]
    public async Task SetupStreamWriterRaw()
    {
        BuildWire();
        var chars = Encoding.ASCII.GetChars(_wire);
        _chars = new ReadOnlyMemory<char>[Lines];
        for (var i = 0; i < _chars.Length; i++)
        {
            _chars[i] = chars.AsMemory(i * LineLength, LineLength - 1);
        }

        (var client, _rawReceiver) = await Loopback.ConnectPairAsync(Transport);
        _streamWriter = new StreamWriter(new NetworkStream(client, ownsSocket: true)) { NewLine = "\n" };
    }

    /// <summary>Two sessions: the receiver listens (<c>StartServerAsync</c>/<c>AcceptAsync</c>), the sender connects (<c>ConnectAsync</c>).</summary>
    [GlobalSetup(Target = nameof(SessionSend_SessionReceive))]
    public async Task SetupSessionSession()
    {
        BuildWire();
        BuildPayloads();
        _receiverSession = new LineCounterSession(LineLength - 1);
        var bound = await _receiverSession.StartServerAsync(Loopback.NewEndPoint(Transport));
        var accepted = _receiverSession.AcceptAsync();
        _senderSession = new LineSenderSession();
        await _senderSession.ConnectAsync(bound);
        await accepted;
    }

    /// <summary>Closes whatever the set-up opened; raw sockets first, so that sessions see the peer go and need not linger.</summary>
    [GlobalCleanup]
    public async Task Cleanup()
    {
        Loopback.Close(_rawSender);
        Loopback.Close(_rawReceiver);
        _socketConnection?.Dispose();
        _streamPipeReader?.Complete();
        _streamPipeWriter?.Complete();
        _streamReader?.Dispose();
        if (_streamWriter is not null)
        {
            await _streamWriter.DisposeAsync();
        }

        await Task.WhenAll(DisposeAsync(_senderSession), DisposeAsync(_receiverSession));

        static Task DisposeAsync(IAsyncDisposable? session) => session?.DisposeAsync().AsTask() ?? Task.CompletedTask;
    }

    // ---- receive paths, behind the raw sender ---------------------------------------------------

    /// <summary>Baseline (c): raw socket writer → <c>Socket.ReceiveAsync</c> into a 64 KiB buffer, span <c>IndexOf</c>.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark(Baseline = true)]
    public async Task<long> RawSend_RawReceive()
    {
        var send = Task.Run(() => Loopback.SendAllAsync(_rawSender!, _wire));
        var tally = await ReceiveRawAsync(_rawReceiver!, send);
        return Verify(tally.Lines, tally.PayloadBytes);
    }

    /// <summary>Raw socket writer → <c>PipeProtocol</c> receiver counting in <c>OnMessageAsync</c> (raw <c>LineFramer</c>).</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> RawSend_SessionReceive()
    {
        var receiver = _receiverSession!;
        var done = receiver.Expect(Lines);
        var send = Task.Run(() => Loopback.SendAllAsync(_rawSender!, _wire));
        await WaitAsync(done, receiver);
        await send;
        return Verify(receiver.Count, receiver.Bytes);
    }

    /// <summary>Baseline (a): raw socket writer → hand-written <c>PipeReader</c> loop with <c>SequenceReader.TryReadTo</c> on a <c>SocketConnection</c>.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public Task<long> RawSend_PipeReaderReceive() => ReceiveWithPipeReaderAsync(_socketConnection!.Input);

    /// <summary>Baseline (a'): the same hand-written loop on a <c>PipeReader.Create(NetworkStream)</c>, which has no adapter thread.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public Task<long> RawSend_StreamPipeReaderReceive() => ReceiveWithPipeReaderAsync(_streamPipeReader!);

    private async Task<long> ReceiveWithPipeReaderAsync(PipeReader input)
    {
        using var watchdog = new Watchdog(CloseConnections);
        var send = Task.Run(() => Loopback.SendAllAsync(_rawSender!, _wire));
        var tally = new PipeTally(LineLength - 1);
        try
        {
            while (tally.Lines < Lines)
            {
                var result = await input.ReadAsync();
                var buffer = result.Buffer;
                input.AdvanceTo(tally.Parse(buffer), buffer.End);
                if (result.IsCompleted && tally.Lines < Lines)
                {
                    throw new EndOfStreamException($"The stream ended after {tally.Lines} of {Lines} lines.");
                }
            }

            await send;
        }
        catch (Exception ex) when (watchdog.Fired)
        {
            throw Watchdog.Stalled($"{tally.Lines} of {Lines} lines", ex);
        }

        return Verify(tally.Lines, tally.PayloadBytes);
    }

    /// <summary>Baseline (b): raw socket writer → <c>StreamReader.ReadLineAsync</c> on a <c>NetworkStream</c>.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> RawSend_StreamReaderReceive()
    {
        using var watchdog = new Watchdog(CloseConnections);
        var send = Task.Run(() => Loopback.SendAllAsync(_rawSender!, _wire));
        var reader = _streamReader!;
        long lines = 0;
        long bytes = 0;
        try
        {
            while (lines < Lines)
            {
                var line = await reader.ReadLineAsync() ?? throw new EndOfStreamException($"The stream ended after {lines} of {Lines} lines.");
                if (line.Length != LineLength - 1)
                {
                    throw new InvalidDataException($"Line {lines + 1} has {line.Length} characters, expected {LineLength - 1}.");
                }

                lines++;
                bytes += line.Length;
            }

            await send;
        }
        catch (Exception ex) when (watchdog.Fired)
        {
            throw Watchdog.Stalled($"{lines} of {Lines} lines", ex);
        }

        return Verify(lines, bytes);
    }

    // ---- send paths, in front of the raw receiver -----------------------------------------------

    /// <summary>The session's send path: <c>SendAsync</c> per line (pre-built payloads) → raw socket receiver.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> SessionSend_RawReceive()
    {
        var send = Task.Run(() => _senderSession!.SendAllAsync(_payloads));
        var tally = await ReceiveRawAsync(_rawReceiver!, send);
        return Verify(tally.Lines, tally.PayloadBytes);
    }

    /// <summary>The session's batch send: <c>SendManyAsync</c> in bursts of 64 lines → raw socket receiver.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> SessionSendMany_RawReceive()
    {
        var send = Task.Run(() => _senderSession!.SendInBurstsAsync(_payloads, 64));
        var tally = await ReceiveRawAsync(_rawReceiver!, send);
        return Verify(tally.Lines, tally.PayloadBytes);
    }

    /// <summary>
    /// Hand-written (a), send side: per line <c>GetSpan</c>, copy, <c>Advance</c>, <c>FlushAsync</c>
    /// on a <see cref="SocketConnection"/>'s output (one writer, no framer, no lock) → raw socket receiver.
    /// </summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> PipeWriterSend_RawReceive()
    {
        var send = Task.Run(() => WriteLinesAsync(_socketConnection!.Output, _payloads));
        var tally = await ReceiveRawAsync(_rawReceiver!, send);
        return Verify(tally.Lines, tally.PayloadBytes);
    }

    /// <summary>Hand-written (a'), send side: the same writes on <c>PipeWriter.Create(NetworkStream)</c> → raw socket receiver.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> StreamPipeWriterSend_RawReceive()
    {
        var send = Task.Run(() => WriteLinesAsync(_streamPipeWriter!, _payloads));
        var tally = await ReceiveRawAsync(_rawReceiver!, send);
        return Verify(tally.Lines, tally.PayloadBytes);
    }

    /// <summary>What a hand-written line sender on a pipe does: each line written and flushed at once.</summary>
    private static async Task WriteLinesAsync(PipeWriter output, ReadOnlySequence<byte>[] payloads)
    {
        foreach (var payload in payloads)
        {
            var length = (int)payload.Length;
            var span = output.GetSpan(length + 1);
            payload.FirstSpan.CopyTo(span);
            span[length] = (byte)'\n';
            output.Advance(length + 1);
            var flush = await output.FlushAsync();
            if (flush.IsCompleted)
            {
                throw new EndOfStreamException("The pipe's reader completed.");
            }
        }
    }

    /// <summary>Baseline (b), send side: <c>StreamWriter.WriteLineAsync</c> per line on a <c>NetworkStream</c> → raw socket receiver.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> StreamWriterSend_RawReceive()
    {
        var send = Task.Run(async () =>
        {
            var writer = _streamWriter!;
            foreach (var line in _chars)
            {
                await writer.WriteLineAsync(line);
            }

            await writer.FlushAsync();
        });
        var tally = await ReceiveRawAsync(_rawReceiver!, send);
        return Verify(tally.Lines, tally.PayloadBytes);
    }

    // ---- both ends ------------------------------------------------------------------------------

    /// <summary>The issue's scenario: a sender session's <c>SendAsync</c> → a receiver session's <c>OnMessageAsync</c>.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public async Task<long> SessionSend_SessionReceive()
    {
        var receiver = _receiverSession!;
        var done = receiver.Expect(Lines);
        var send = Task.Run(() => _senderSession!.SendAllAsync(_payloads));
        await WaitAsync(done, receiver);
        await send;
        return Verify(receiver.Count, receiver.Bytes);
    }

    // ---- helpers --------------------------------------------------------------------------------

    private static async Task WaitAsync(Task done, LineCounterSession receiver)
    {
        try
        {
            await done.WaitAsync(Loopback.OperationTimeout);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"Stalled: the receiver counted {receiver.Count} lines ({receiver.Bytes} bytes) in {Loopback.OperationTimeout}; runstate {receiver.Runstate}; session ended: {receiver.EndCause ?? "not yet"}.", ex);
        }
    }

    /// <summary>
    /// The raw receive loop: exactly one stream's bytes, lines counted with a span <c>IndexOf</c>.
    /// Ends once the sender has finished too, and reports a stall of either side.
    /// </summary>
    private async Task<LineTally> ReceiveRawAsync(Socket socket, Task send)
    {
        using var watchdog = new Watchdog(CloseConnections);
        var tally = new LineTally(LineLength - 1);
        long remaining = _wire.Length;
        try
        {
            while (remaining > 0)
            {
                var received = await socket.ReceiveAsync(_receiveBuffer.AsMemory(0, (int)Math.Min(_receiveBuffer.Length, remaining)), SocketFlags.None);
                if (received == 0)
                {
                    throw new EndOfStreamException($"The stream ended after {tally.Lines} of {Lines} lines.");
                }

                tally.Add(_receiveBuffer.AsSpan(0, received));
                remaining -= received;
            }

            await send;
        }
        catch (Exception ex) when (watchdog.Fired)
        {
            throw Watchdog.Stalled($"{tally.Lines} of {Lines} lines", ex);
        }

        return tally;
    }

    /// <summary>Closes every connection the set-up opened (the watchdog's action).</summary>
    private void CloseConnections()
    {
        Loopback.Close(_rawSender);
        Loopback.Close(_rawReceiver);
        _socketConnection?.Dispose();
        _streamPipeReader?.Complete();
        _streamPipeWriter?.Complete();
        _streamReader?.Dispose();
        _streamWriter?.BaseStream.Dispose();
        _senderSession?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
        _receiverSession?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
    }

    private long Verify(long lines, long payloadBytes)
    {
        if (lines != Lines || payloadBytes != (long)Lines * (LineLength - 1))
        {
            throw new InvalidOperationException($"Received {lines} lines / {payloadBytes} payload bytes, expected {Lines} / {(long)Lines * (LineLength - 1)}.");
        }

        return payloadBytes + lines;
    }

    private void BuildWire() => _wire = LineStream.BuildWire(Lines, LineLength);

    private void BuildPayloads() => _payloads = LineStream.Payloads(_wire, LineLength);

    /// <summary>Counts lines in consecutive chunks of a byte stream, checking each line's length.</summary>
    private struct LineTally(int payloadLength)
    {
        private int _partial;

        public long Lines { get; private set; }

        public long PayloadBytes { get; private set; }

        public void Add(ReadOnlySpan<byte> chunk)
        {
            while (true)
            {
                var index = chunk.IndexOf((byte)'\n');
                if (index < 0)
                {
                    _partial += chunk.Length;
                    PayloadBytes += chunk.Length;
                    return;
                }

                if (_partial + index != payloadLength)
                {
                    throw new InvalidDataException($"Line {Lines + 1} has {_partial + index} bytes, expected {payloadLength}.");
                }

                PayloadBytes += index;
                Lines++;
                _partial = 0;
                chunk = chunk[(index + 1)..];
            }
        }
    }

    /// <summary>The hand-written <c>SequenceReader.TryReadTo</c> parse of one read.</summary>
    private struct PipeTally(int payloadLength)
    {
        public long Lines { get; private set; }

        public long PayloadBytes { get; private set; }

        /// <returns>How far whole lines were consumed.</returns>
        public SequencePosition Parse(in ReadOnlySequence<byte> buffer)
        {
            var reader = new SequenceReader<byte>(buffer);
            while (reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
            {
                if (line.Length != payloadLength)
                {
                    throw new InvalidDataException($"Line {Lines + 1} has {line.Length} bytes, expected {payloadLength}.");
                }

                Lines++;
                PayloadBytes += line.Length;
            }

            return reader.Position;
        }
    }

    /// <summary>The stream benchmarks' configuration: MiB/s and allocation per line.</summary>
    internal sealed class StreamConfig : EndToEndConfig
    {
        public StreamConfig()
        {
            AddColumn(
                new RateColumn("MiB/s", "Payload plus terminators moved per second (32 MiB per operation)", _ => StreamBytes / (1024.0 * 1024.0), "N0"),
                new AllocatedPerMessageColumn(benchmarkCase => StreamBytes / (double)LineLengthOf(benchmarkCase)));
        }

        private static int LineLengthOf(BenchmarkCase benchmarkCase) => (int)benchmarkCase.Parameters[nameof(LineLength)];
    }
}
