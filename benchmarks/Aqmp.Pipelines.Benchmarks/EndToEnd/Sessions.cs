using System.Buffers;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>
/// A receiving session: counts the lines and payload bytes delivered to <see cref="OnMessageAsync"/>,
/// checks every line's length, and completes a task when the expected number has arrived.
/// </summary>
internal sealed class LineCounterSession(int payloadLength, PipeProtocolOptions? options = null) : PipeProtocol<ReadOnlySequence<byte>>(new LineFramer(), options)
{
    private long _expected;
    private long _count;
    private long _bytes;
    private TaskCompletionSource? _done;

    /// <summary>Lines counted since the last <see cref="Expect"/>.</summary>
    public long Count => Volatile.Read(ref _count);

    /// <summary>Payload bytes (terminators excluded) counted since the last <see cref="Expect"/>.</summary>
    public long Bytes => Volatile.Read(ref _bytes);

    /// <summary>Why the session ended, once it has: its root cause, or "no error".</summary>
    public string? EndCause { get; private set; }

    protected override ValueTask OnSessionEndedAsync(Exception? rootCause)
    {
        EndCause = rootCause?.ToString() ?? "no error";
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Starts a new round: resets the counters and returns a task that completes when
    /// <paramref name="lines"/> lines have arrived. Call only while nothing is in flight.
    /// </summary>
    public Task Expect(long lines)
    {
        if (_count != _expected)
        {
            throw new InvalidOperationException($"{_count} lines arrived in the previous round, {_expected} were sent.");
        }

        _count = 0;
        _bytes = 0;
        _expected = lines;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _done, done);
        return done.Task;
    }

    protected override ValueTask OnMessageAsync(ReadOnlySequence<byte> message, MessageContext<ReadOnlySequence<byte>> context, CancellationToken cancellationToken)
    {
        var length = message.Length;
        _bytes += length;
        var count = ++_count;
        if (length != payloadLength)
        {
            _done?.TrySetException(new InvalidDataException($"Line {count} has {length} bytes, expected {payloadLength}."));
        }
        else if (count == _expected)
        {
            _done!.TrySetResult();
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>A sending session: queues pre-built payloads with <see cref="PipeProtocol{TMessage}.SendAsync"/>.</summary>
internal sealed class LineSenderSession(PipeProtocolOptions? options = null) : PipeProtocol<ReadOnlySequence<byte>>(new LineFramer(), options)
{
    /// <summary>Queues every payload, in order, waiting whenever the outbound queue is full.</summary>
    public async Task SendAllAsync(ReadOnlySequence<byte>[] payloads)
    {
        foreach (var payload in payloads)
        {
            await SendAsync(payload).ConfigureAwait(false);
        }
    }

    /// <summary>Sends the payloads in bursts of <paramref name="burst"/> with <c>SendManyAsync</c>, in order.</summary>
    public async Task SendInBurstsAsync(ReadOnlySequence<byte>[] payloads, int burst)
    {
        for (var start = 0; start < payloads.Length; start += burst)
        {
            await SendManyAsync(payloads.AsMemory(start, Math.Min(burst, payloads.Length - start))).ConfigureAwait(false);
        }
    }
}

/// <summary>
/// The echo server: each line is sent back from <see cref="OnMessageAsync"/>. An inbound line points
/// into the pipe and the write loop frames the reply later, so the line is first copied into a slot
/// of a preallocated ring (no allocation per message; the client's window bounds the replies in
/// flight far below the ring's size).
/// </summary>
internal sealed class EchoServerSession(int maximumLineLength) : PipeProtocol<ReadOnlySequence<byte>>(new LineFramer())
{
    private const int RingSize = 1024;

    private readonly byte[][] _ring = CreateRing(maximumLineLength);
    private int _next;

    protected override ValueTask OnMessageAsync(ReadOnlySequence<byte> message, MessageContext<ReadOnlySequence<byte>> context, CancellationToken cancellationToken)
    {
        var slot = _ring[_next++ & (RingSize - 1)];
        message.CopyTo(slot);
        return context.SendAsync(new ReadOnlySequence<byte>(slot, 0, (int)message.Length), cancellationToken);
    }

    private static byte[][] CreateRing(int length)
    {
        var ring = new byte[RingSize][];
        for (var i = 0; i < ring.Length; i++)
        {
            ring[i] = new byte[length];
        }

        return ring;
    }
}

/// <summary>
/// The echo client: sends the first request itself, then from <see cref="OnMessageAsync"/> keeps up
/// to <c>window</c> requests outstanding until <c>total</c> replies have arrived; each reply must
/// equal its request byte for byte, in order.
/// </summary>
internal sealed class EchoClientSession(EchoRequests requests) : PipeProtocol<ReadOnlySequence<byte>>(new LineFramer())
{
    private int _total;
    private int _window;
    private int _sent;
    private int _received;
    private TaskCompletionSource? _done;

    /// <summary>Replies received in the current round.</summary>
    public int Received => Volatile.Read(ref _received);

    /// <summary>Runs one round of <paramref name="total"/> round trips with <paramref name="window"/> outstanding.</summary>
    /// <returns>A task that completes when the last reply has arrived.</returns>
    public async Task RunAsync(int total, int window)
    {
        if (_sent != _received)
        {
            throw new InvalidOperationException($"{_sent - _received} requests of the previous round were never answered.");
        }

        _total = total;
        _window = window;
        _received = 0;
        _sent = 1;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _done, done);

        // Only the first request is sent from here; the read loop sends all others, so requests
        // leave in sequence order.
        await SendAsync(requests.Payload(0)).ConfigureAwait(false);
        try
        {
            await done.Task.WaitAsync(Loopback.OperationTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"Stalled: {Received} of {total} replies after {Loopback.OperationTimeout} ({_sent} requests queued); runstate {Runstate}.", ex);
        }
    }

    protected override async ValueTask OnMessageAsync(ReadOnlySequence<byte> message, MessageContext<ReadOnlySequence<byte>> context, CancellationToken cancellationToken)
    {
        var sequence = _received++;
        if (!requests.Matches(sequence, message))
        {
            _done!.TrySetException(new InvalidDataException($"Reply {sequence} does not match its request."));
            return;
        }

        if (_received == _total)
        {
            _done!.TrySetResult();
            return;
        }

        while (_sent < _total && _sent - _received < _window)
        {
            await context.SendAsync(requests.Payload(_sent++), cancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>
/// The requests of the echo benchmarks: <see cref="Distinct"/> different lines, request <c>n</c>
/// being line <c>n % Distinct</c>. <see cref="Wire"/> holds them twice over, with terminators, so
/// that any run of up to <see cref="Distinct"/> consecutive requests is one contiguous slice.
/// </summary>
internal sealed class EchoRequests
{
    /// <summary>How many different request lines there are (a power of two).</summary>
    public const int Distinct = 256;

    private readonly ReadOnlySequence<byte>[] _payloads;

    public EchoRequests(int lineLength)
    {
        LineLength = lineLength;
        Wire = new byte[2 * Distinct * lineLength];
        _payloads = new ReadOnlySequence<byte>[Distinct];
        for (var line = 0; line < 2 * Distinct; line++)
        {
            var span = Wire.AsSpan(line * lineLength, lineLength);
            var tag = (line % Distinct).ToString("x2", System.Globalization.CultureInfo.InvariantCulture);
            for (var i = 0; i < lineLength - 1; i++)
            {
                span[i] = i < tag.Length ? (byte)tag[i] : (byte)('a' + ((line + i) % 26));
            }

            span[^1] = (byte)'\n';
        }

        for (var i = 0; i < Distinct; i++)
        {
            _payloads[i] = new ReadOnlySequence<byte>(Wire, i * lineLength, lineLength - 1);
        }
    }

    /// <summary>Line length including the LF.</summary>
    public int LineLength { get; }

    /// <summary>The request lines with terminators, <see cref="Distinct"/> lines twice over.</summary>
    public byte[] Wire { get; }

    /// <summary>The payload (no terminator) of request <paramref name="sequence"/>.</summary>
    public ReadOnlySequence<byte> Payload(int sequence) => _payloads[sequence & (Distinct - 1)];

    /// <summary>Whether <paramref name="reply"/> is the payload of request <paramref name="sequence"/>.</summary>
    public bool Matches(int sequence, in ReadOnlySequence<byte> reply)
    {
        var expected = Wire.AsSpan((sequence & (Distinct - 1)) * LineLength, LineLength - 1);
        if (reply.IsSingleSegment)
        {
            return reply.FirstSpan.SequenceEqual(expected);
        }

        if (reply.Length != expected.Length)
        {
            return false;
        }

        foreach (var segment in reply)
        {
            if (!segment.Span.SequenceEqual(expected[..segment.Length]))
            {
                return false;
            }

            expected = expected[segment.Length..];
        }

        return true;
    }

    /// <summary>
    /// Whether <paramref name="received"/> equals the wire bytes of the request stream from byte
    /// <paramref name="offset"/> on (the stream repeats every <see cref="Distinct"/> lines).
    /// </summary>
    public bool MatchesWire(long offset, ReadOnlySpan<byte> received)
    {
        var period = Distinct * LineLength;
        while (!received.IsEmpty)
        {
            var start = (int)(offset % period);
            var take = Math.Min(received.Length, period);
            if (!received[..take].SequenceEqual(Wire.AsSpan(start, take)))
            {
                return false;
            }

            received = received[take..];
            offset += take;
        }

        return true;
    }
}
