using System.Buffers;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>Which line terminators a <see cref="LineFrameStream"/> uses.</summary>
public enum LineTerminators
{
    /// <summary>LF or CRLF, at random per line.</summary>
    Mixed,

    /// <summary>LF only (what <c>LineFramer</c> writes by default).</summary>
    Lf,

    /// <summary>CRLF only (what <c>LineFramer</c> writes with <c>writeCrLf</c>).</summary>
    CrLf,
}

/// <summary>One generated line.</summary>
/// <param name="Index">Its position in the stream, from 0.</param>
/// <param name="Line">Its content as sent, without terminator.</param>
/// <param name="Wire">Its bytes on the wire: content and terminator.</param>
/// <param name="Delivered">
/// What <c>LineFramer</c> delivers for it: the content, minus a trailing CR when the terminator is a
/// bare LF (LineFramer's documented rule: that CR reads as the CR of a CRLF).
/// </param>
/// <param name="CrLf">Whether the terminator is CRLF.</param>
internal readonly record struct LineFrame(int Index, ReadOnlyMemory<byte> Line, ReadOnlyMemory<byte> Wire, ReadOnlyMemory<byte> Delivered, bool CrLf);

/// <summary>
/// A seeded stream of random lines: two instances with the same seed produce the same lines, so a
/// receiver checks each line against its own regenerated copy instead of keeping them all.
/// </summary>
/// <remarks>
/// Lengths run from 0 to <see cref="MaximumLineLength"/> (16 KiB), mostly short: 5 % empty, 65 %
/// up to 80 bytes, 26 % up to 1 KiB, the rest longer, and 0.3 % exactly the maximum. Content is
/// either printable ASCII or any byte but LF; one line in eight has a lone CR in its middle, one in
/// fifty ends with a CR (after a bare LF terminator that CR is not delivered, see <see cref="LineFrame.Delivered"/>).
/// The frame's memory is reused by the next call.
/// </remarks>
internal sealed class LineFrameStream(int seed, int count, LineTerminators terminators) : IFrameSource
{
    /// <summary>The longest line content: the receiver's <c>LineFramer</c> limit.</summary>
    public const int MaximumLineLength = 16 * 1024;

    private const byte CarriageReturn = (byte)'\r';
    private const byte LineFeed = (byte)'\n';

    private readonly Random _random = new(seed);
    private readonly byte[] _buffer = new byte[MaximumLineLength + 2];

    /// <summary>How many lines the stream holds.</summary>
    public int Count { get; } = count;

    /// <summary>How many lines were produced so far.</summary>
    public int Produced { get; private set; }

    /// <summary>Produces the next line (its memory is valid until the next call).</summary>
    /// <returns>The line.</returns>
    /// <exception cref="InvalidOperationException">All <see cref="Count"/> lines were produced.</exception>
    public LineFrame Next()
    {
        if (Produced == Count)
        {
            throw new InvalidOperationException($"All {Count} lines were produced.");
        }

        var length = NextLength();
        var line = _buffer.AsSpan(0, length);
        FillContent(line);

        var crLf = terminators switch
        {
            LineTerminators.Lf => false,
            LineTerminators.CrLf => true,
            _ => _random.Next(2) == 0,
        };
        int wireLength;
        if (crLf)
        {
            _buffer[length] = CarriageReturn;
            _buffer[length + 1] = LineFeed;
            wireLength = length + 2;
        }
        else
        {
            _buffer[length] = LineFeed;
            wireLength = length + 1;
        }

        var delivered = !crLf && length > 0 && line[^1] == CarriageReturn ? length - 1 : length;
        return new LineFrame(Produced++, _buffer.AsMemory(0, length), _buffer.AsMemory(0, wireLength), _buffer.AsMemory(0, delivered), crLf);
    }

    /// <inheritdoc />
    public bool TryAppendNext(IBufferWriter<byte> output)
    {
        if (Produced == Count)
        {
            return false;
        }

        output.Write(Next().Wire.Span);
        return true;
    }

    private int NextLength() => _random.Next(1000) switch
    {
        < 50 => 0,
        < 700 => _random.Next(1, 81),
        < 960 => _random.Next(81, 1025),
        < 997 => _random.Next(1025, MaximumLineLength),
        _ => MaximumLineLength,
    };

    private void FillContent(Span<byte> line)
    {
        if (line.IsEmpty)
        {
            return;
        }

        _random.NextBytes(line);
        if (_random.Next(4) == 0)
        {
            // Any byte but LF: CRs, NULs and invalid UTF-8 included.
            line.Replace(LineFeed, (byte)0x8A);
        }
        else
        {
            // Printable ASCII.
            for (var i = 0; i < line.Length; i++)
            {
                line[i] = (byte)(0x20 + (line[i] % 95));
            }
        }

        if (line.Length >= 3 && _random.Next(8) == 0)
        {
            line[_random.Next(1, line.Length - 1)] = CarriageReturn;
        }

        if (_random.Next(50) == 0)
        {
            line[^1] = CarriageReturn;
        }
    }
}
