namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// A stream that keeps every byte read through it, so that a test can see the TLS records a peer
/// sent under an <see cref="System.Net.Security.SslStream"/>: their content types, which TLS 1.2
/// leaves in clear (21 = alert, 22 = handshake, 23 = application data).
/// </summary>
internal sealed class TlsRecordLog(Stream inner) : StreamStub
{
    private readonly MemoryStream _read = new();

    public const byte Alert = 21;

    public const byte ApplicationData = 23;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    /// <summary>The content type of every whole record read so far, in order.</summary>
    public IReadOnlyList<byte> RecordTypes()
    {
        var bytes = _read.ToArray();
        var types = new List<byte>();
        var offset = 0;
        while (offset + 5 <= bytes.Length)
        {
            var length = (bytes[offset + 3] << 8) | bytes[offset + 4];
            if (offset + 5 + length > bytes.Length)
            {
                break;
            }

            types.Add(bytes[offset]);
            offset += 5 + length;
        }

        return types;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken);
        _read.Write(buffer.Span[..read]);
        return read;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
            _read.Dispose();
        }

        base.Dispose(disposing);
    }
}
