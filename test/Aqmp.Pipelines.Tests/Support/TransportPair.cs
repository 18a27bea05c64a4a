using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>The socket transports a <see cref="TransportPair"/> can connect over.</summary>
public enum TransportKind
{
    /// <summary>Plain TCP over 127.0.0.1.</summary>
    Tcp4,

    /// <summary>Plain TCP over [::1].</summary>
    Tcp6,

    /// <summary>Plain Unix-domain socket.</summary>
    Unix,

    /// <summary>TLS over TCP 127.0.0.1.</summary>
    TlsTcp,

    /// <summary>TLS over a Unix-domain socket.</summary>
    TlsUnix,
}

/// <summary>
/// A connected client/server pair of <see cref="TransportConnection"/>s made by
/// <see cref="SocketListener"/> and <see cref="SocketTransport"/>. Disposing aborts both and stops the listener.
/// </summary>
internal sealed class TransportPair : IAsyncDisposable
{
    private TransportPair(TransportKind kind, SocketListener listener, TransportConnection client, TransportConnection server)
    {
        Kind = kind;
        Listener = listener;
        Client = client;
        Server = server;
    }

    public TransportKind Kind { get; }

    public SocketListener Listener { get; }

    public TransportConnection Client { get; }

    public TransportConnection Server { get; }

    public static bool IsTls(TransportKind kind) => kind is TransportKind.TlsTcp or TransportKind.TlsUnix;

    /// <summary>The endpoint to bind a listener of <paramref name="kind"/> to (port 0, or a fresh socket path).</summary>
    public static EndPoint BindEndPoint(TransportKind kind) => kind switch
    {
        TransportKind.Tcp4 or TransportKind.TlsTcp => new IPEndPoint(IPAddress.Loopback, 0),
        TransportKind.Tcp6 => new IPEndPoint(IPAddress.IPv6Loopback, 0),
        TransportKind.Unix or TransportKind.TlsUnix => new UnixDomainSocketEndPoint(TempPaths.NewSocketPath()),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Ignores the current test when <paramref name="kind"/> needs IPv6 loopback and the machine has none.</summary>
    public static void IgnoreIfUnavailable(TransportKind kind)
    {
        if (kind != TransportKind.Tcp6)
        {
            return;
        }

        try
        {
            using var probe = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        }
        catch (SocketException ex)
        {
            Assert.Ignore($"IPv6 loopback is unavailable on this machine: {ex.SocketErrorCode}.");
        }
    }

    /// <summary>Binds a listener, connects a client to it and accepts the server side.</summary>
    public static async Task<TransportPair> CreateAsync(TransportKind kind, TransportOptions? clientOptions = null, TransportOptions? serverOptions = null)
    {
        IgnoreIfUnavailable(kind);
        var tls = IsTls(kind);
        var listener = await SocketListener.BindAsync(BindEndPoint(kind)).Bounded();
        TransportConnection? client = null;
        var accept = listener.AcceptAsync(tls ? TestCertificates.ServerOptions() : null, serverOptions).AsTask();
        try
        {
            client = await SocketTransport.ConnectAsync(listener.LocalEndPoint, tls ? TestCertificates.ClientOptions() : null, clientOptions).Bounded();
            var server = await accept.Bounded();
            return new TransportPair(kind, listener, client, server);
        }
        catch
        {
            client?.Abort();
            listener.Dispose();
            _ = accept.ContinueWith(t => t.Result.Abort(), TaskContinuationOptions.OnlyOnRanToCompletion);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Server.DisposeAsync();
        Listener.Dispose();
    }
}

/// <summary>Reading and writing helpers for pipes in transport tests.</summary>
internal static class PipeIO
{
    private const int Period = 251;
    private const int MaxBlock = 1024 * 1024;

    /// <summary>The test pattern from offset 0, long enough to copy any block of up to <see cref="MaxBlock"/> bytes from any phase.</summary>
    private static readonly byte[] Pattern = Enumerable.Range(0, MaxBlock + Period).Select(i => PatternAt(i)).ToArray();

    /// <summary>The byte at <paramref name="offset"/> of the test pattern (a period of 251, a prime, so chunk edges never line up).</summary>
    public static byte PatternAt(long offset) => (byte)(offset % Period);

    /// <summary>A token that fires after <see cref="TestTimeouts.Default"/>.</summary>
    public static CancellationTokenSource Timeout() => new(TestTimeouts.Default);

    /// <summary>Writes <paramref name="total"/> pattern bytes, flushing after every <paramref name="chunk"/> bytes.</summary>
    public static async Task WritePatternAsync(PipeWriter writer, long total, int chunk, CancellationToken cancellationToken)
    {
        long offset = 0;
        while (offset < total)
        {
            var size = (int)Math.Min(Math.Min(chunk, MaxBlock), total - offset);
            Pattern.AsSpan((int)(offset % Period), size).CopyTo(writer.GetSpan(size));
            writer.Advance(size);
            offset += size;
            var flush = await writer.FlushAsync(cancellationToken);
            if (flush.IsCompleted && offset < total)
            {
                throw new IOException($"The reader went away after {offset} of {total} bytes.");
            }
        }
    }

    /// <summary>
    /// Reads until the end of the stream, checking that the bytes follow the test pattern; returns how many arrived.
    /// </summary>
    public static Task<long> ReadPatternToEndAsync(PipeReader reader, CancellationToken cancellationToken)
        => ReadPatternAsync(reader, long.MaxValue, cancellationToken);

    /// <summary>
    /// Reads <paramref name="limit"/> bytes or until the end of the stream, whichever comes first, checking that
    /// the bytes follow the test pattern; returns how many were read.
    /// </summary>
    public static async Task<long> ReadPatternAsync(PipeReader reader, long limit, CancellationToken cancellationToken)
    {
        long offset = 0;
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer.Length > limit - offset ? result.Buffer.Slice(0, limit - offset) : result.Buffer;
            foreach (var segment in buffer)
            {
                for (var start = 0; start < segment.Length; start += MaxBlock)
                {
                    var span = segment.Span.Slice(start, Math.Min(MaxBlock, segment.Length - start));
                    var expected = Pattern.AsSpan((int)(offset % Period), span.Length);
                    if (!span.SequenceEqual(expected))
                    {
                        var at = span.CommonPrefixLength(expected);
                        Assert.Fail($"Byte {offset + at} is {span[at]}, expected {expected[at]}.");
                    }

                    offset += span.Length;
                }
            }

            reader.AdvanceTo(buffer.End);
            if (offset >= limit || result.IsCompleted)
            {
                return offset;
            }
        }
    }

    /// <summary>Writes and flushes <paramref name="data"/>.</summary>
    public static async Task WriteAsync(PipeWriter writer, byte[] data, CancellationToken cancellationToken = default)
    {
        using var timeout = Timeout();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        await writer.WriteAsync(data, linked.Token);
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes (fails if the stream ends first).</summary>
    public static async Task<byte[]> ReadExactlyAsync(PipeReader reader, int count, CancellationToken cancellationToken = default)
    {
        using var timeout = Timeout();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        while (true)
        {
            var result = await reader.ReadAsync(linked.Token);
            if (result.Buffer.Length >= count)
            {
                var bytes = result.Buffer.Slice(0, count).ToArray();
                reader.AdvanceTo(result.Buffer.GetPosition(count));
                return bytes;
            }

            if (result.IsCompleted)
            {
                throw new EndOfStreamException($"The stream ended after {result.Buffer.Length} of {count} bytes.");
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>
    /// Reads and discards until the stream ends, either cleanly (returns <see langword="null"/>) or with an
    /// I/O or socket error (returns it); the count of bytes that arrived is in <paramref name="received"/>.
    /// </summary>
    public static async Task<(long Received, Exception? Error)> DrainAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        long received = 0;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken);
                received += result.Buffer.Length;
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    return (received, null);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            return (received, ex);
        }
    }
}
