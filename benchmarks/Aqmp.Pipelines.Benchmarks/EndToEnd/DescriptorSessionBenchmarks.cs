using System.Buffers;
using BenchmarkDotNet.Attributes;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>
/// What allowing file-descriptor passing costs a session that sends none: the stream of
/// <see cref="EndToEndStreamBenchmarks"/> (32 MiB of lines, session to session over a Unix socket),
/// with both sessions opened with <see cref="PipeProtocolOptions.AllowDescriptorPassing"/> (every
/// receive a <c>recvmsg</c> with a control buffer, sends through the descriptor connection's send
/// loop) against the same sessions without it.
/// </summary>
[Config(typeof(EndToEndStreamBenchmarks.StreamConfig))]
public class DescriptorSessionBenchmarks
{
    /// <summary>Bytes one operation moves, terminators included.</summary>
    public const int StreamBytes = EndToEndStreamBenchmarks.StreamBytes;

    private static readonly PipeProtocolOptions Descriptors = new() { AllowDescriptorPassing = true };

    private ReadOnlySequence<byte>[] _payloads = [];
    private LineSenderSession? _sender;
    private LineCounterSession? _receiver;

    /// <summary>Line length including its LF.</summary>
    [Params(64, 4096)]
    public int LineLength { get; set; }

    private int Lines => StreamBytes / LineLength;

    /// <summary>Two plain sessions over a Unix socket.</summary>
    [GlobalSetup(Target = nameof(PlainSessions))]
    public Task SetupPlain() => ConnectAsync(options: null);

    /// <summary>Two sessions that allow descriptor passing, over a Unix socket.</summary>
    [GlobalSetup(Target = nameof(DescriptorSessions))]
    public Task SetupDescriptors() => ConnectAsync(Descriptors);

    /// <summary>Closes both sessions.</summary>
    [GlobalCleanup]
    public async Task Cleanup()
    {
        await Task.WhenAll(
            _sender?.DisposeAsync().AsTask() ?? Task.CompletedTask,
            _receiver?.DisposeAsync().AsTask() ?? Task.CompletedTask);
    }

    /// <summary>Baseline: <c>SendAsync</c> → <c>OnMessageAsync</c> between plain sessions.</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark(Baseline = true)]
    public Task<long> PlainSessions() => StreamAsync();

    /// <summary>The same between sessions that allow descriptor passing (none is sent).</summary>
    /// <returns>The bytes moved.</returns>
    [Benchmark]
    public Task<long> DescriptorSessions() => StreamAsync();

    private async Task ConnectAsync(PipeProtocolOptions? options)
    {
        _payloads = LineStream.Payloads(LineStream.BuildWire(Lines, LineLength), LineLength);
        _receiver = new LineCounterSession(LineLength - 1, options);
        var bound = await _receiver.StartServerAsync(Loopback.NewEndPoint(TransportKind.Unix));
        var accepted = _receiver.AcceptAsync();
        _sender = new LineSenderSession(options);
        await _sender.ConnectAsync(bound);
        await accepted;
    }

    private async Task<long> StreamAsync()
    {
        var receiver = _receiver!;
        var done = receiver.Expect(Lines);
        var send = Task.Run(() => _sender!.SendAllAsync(_payloads));
        await done.WaitAsync(Loopback.OperationTimeout);
        await send;
        if (receiver.Count != Lines || receiver.Bytes != (long)Lines * (LineLength - 1))
        {
            throw new InvalidOperationException($"Received {receiver.Count} lines / {receiver.Bytes} payload bytes, expected {Lines} / {(long)Lines * (LineLength - 1)}.");
        }

        return receiver.Bytes + receiver.Count;
    }
}
