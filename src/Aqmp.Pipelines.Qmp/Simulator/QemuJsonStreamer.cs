using System.Buffers;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// QEMU 7.2's JSON lexer and streamer (<c>json-lexer.c</c>, <c>json-streamer.c</c>) over a byte
/// sequence: finds where the first value's tokens balance, or the first error QEMU would report.
/// </summary>
/// <remarks>
/// <para>
/// The lexer knows strings in double and single quotes (no control byte, <c>FE</c> or <c>FF</c>
/// inside), numbers, runs of lower-case letters as keywords, the six structural bytes and
/// whitespace. A byte no token can hold here is an error token (the bytes of the token it cut
/// short, then itself): the streamer reports "JSON parse error, stray '…'" and the lexer skips
/// bytes until a structural byte (a bracket, brace, colon or comma), a control byte other than tab, <c>FE</c> or <c>FF</c>, which it reads again.
/// </para>
/// <para>
/// The streamer counts braces and brackets apart and hands the tokens to the parser when both are
/// back to zero or either goes below it. It refuses, with QEMU's words, more than 1024 open
/// brackets and braces together, more than 2 Mi tokens, or 64 MiB of tokens in one value; the
/// tokens so far are dropped and the lexer goes on from the next byte.
/// </para>
/// </remarks>
internal static class QemuJsonStreamer
{
    /// <summary>How many brackets and braces may be open together.</summary>
    public const int MaximumNesting = 1024;

    /// <summary>How many tokens one value may have.</summary>
    public const int MaximumTokenCount = 2 * 1024 * 1024;

    /// <summary>How many bytes the tokens of one value may have.</summary>
    public const long MaximumTokenSize = 64L * 1024 * 1024;

    private enum State
    {
        Start,
        Recovery,
        DqString,
        DqEscape,
        SqString,
        SqEscape,
        Zero,
        ExpDigits,
        ExpSign,
        ExpE,
        Mantissa,
        MantissaDigits,
        Digits,
        Sign,
        Keyword,
    }

    /// <summary>Scans <paramref name="input"/> from its start.</summary>
    /// <param name="input">The bytes, starting where QEMU's last value or error ended.</param>
    /// <param name="recovering">Whether the lexer starts by skipping bytes after a stray one.</param>
    /// <returns>What QEMU emits first, and where.</returns>
    public static QemuJsonScan Scan(in ReadOnlySequence<byte> input, bool recovering)
    {
        var state = recovering ? State.Recovery : State.Start;
        var token = new List<byte>();
        var tokens = new List<QemuJsonToken>();
        int braces = 0, brackets = 0;
        long tokenSize = 0;
        long offset = 0;

        foreach (var memory in input)
        {
            var span = memory.Span;
            for (var i = 0; i < span.Length; i++, offset++)
            {
                var b = span[i];
                while (true)
                {
                    var (next, type, consumed) = Step(state, b);
                    if (consumed && next != State.Start && next != State.Recovery)
                    {
                        token.Add(b);
                    }
                    else if (consumed && type is not null)
                    {
                        token.Add(b);
                    }

                    if (type is { } t)
                    {
                        var end = consumed ? offset + 1 : offset;
                        if (t == QemuJsonTokenType.Error)
                        {
                            return new QemuJsonScan(QemuJsonScanOutcome.Error, end, null, "JSON parse error, stray '" + QemuUtf8.DecodeLossy([.. token]) + "'", Recovering: true, Idle: false);
                        }

                        switch (t)
                        {
                            case QemuJsonTokenType.LeftCurly: braces++; break;
                            case QemuJsonTokenType.RightCurly: braces--; break;
                            case QemuJsonTokenType.LeftSquare: brackets++; break;
                            case QemuJsonTokenType.RightSquare: brackets--; break;
                        }

                        string? limit = tokenSize + token.Count + 1 > MaximumTokenSize ? "JSON token size limit exceeded"
                            : tokens.Count + 1 > MaximumTokenCount ? "JSON token count limit exceeded"
                            : braces + brackets > MaximumNesting ? "JSON nesting depth limit exceeded"
                            : null;
                        if (limit is not null)
                        {
                            return new QemuJsonScan(QemuJsonScanOutcome.Error, end, null, limit, Recovering: false, Idle: false);
                        }

                        tokens.Add(new QemuJsonToken(t, [.. token]));
                        tokenSize += token.Count;
                        token.Clear();
                        if (!((braces > 0 || brackets > 0) && braces >= 0 && brackets >= 0))
                        {
                            return new QemuJsonScan(QemuJsonScanOutcome.Value, end, tokens, null, Recovering: false, Idle: false);
                        }

                        next = State.Start;
                    }
                    else if (next is State.Start or State.Recovery)
                    {
                        token.Clear();
                    }

                    state = next;
                    if (consumed)
                    {
                        break;
                    }
                }
            }
        }

        var idle = tokens.Count == 0 && state is State.Start or State.Recovery && token.Count == 0;
        return new QemuJsonScan(QemuJsonScanOutcome.NeedMore, offset, null, null, state == State.Recovery, idle);
    }

    /// <summary>One transition of QEMU's lexer table.</summary>
    /// <returns>The next state, the token it completes (if any), and whether <paramref name="b"/> was consumed (false: read it again).</returns>
    private static (State Next, QemuJsonTokenType? Token, bool Consumed) Step(State state, byte b)
    {
        var isDigit = b is >= (byte)'0' and <= (byte)'9';
        return state switch
        {
            State.Recovery => b is < 0x20 and not (byte)'\t' or 0xFE or 0xFF or (byte)'[' or (byte)']' or (byte)'{' or (byte)'}' or (byte)':' or (byte)','
                ? (State.Start, null, false)
                : (State.Recovery, null, true),
            State.DqString => b switch
            {
                (byte)'\\' => (State.DqEscape, null, true),
                (byte)'"' => (State.Start, QemuJsonTokenType.String, true),
                >= 0x20 and <= 0xFD => (State.DqString, null, true),
                _ => Error,
            },
            State.DqEscape => b is >= 0x20 and <= 0xFD ? (State.DqString, null, true) : Error,
            State.SqString => b switch
            {
                (byte)'\\' => (State.SqEscape, null, true),
                (byte)'\'' => (State.Start, QemuJsonTokenType.String, true),
                >= 0x20 and <= 0xFD => (State.SqString, null, true),
                _ => Error,
            },
            State.SqEscape => b is >= 0x20 and <= 0xFD ? (State.SqString, null, true) : Error,
            State.Zero => isDigit ? Error : b == (byte)'.' ? (State.Mantissa, null, true) : (State.Start, QemuJsonTokenType.Integer, false),
            State.ExpDigits => isDigit ? (State.ExpDigits, null, true) : (State.Start, QemuJsonTokenType.Float, false),
            State.ExpSign => isDigit ? (State.ExpDigits, null, true) : Error,
            State.ExpE => isDigit ? (State.ExpDigits, null, true) : b is (byte)'-' or (byte)'+' ? (State.ExpSign, null, true) : Error,
            State.Mantissa => isDigit ? (State.MantissaDigits, null, true) : Error,
            State.MantissaDigits => isDigit ? (State.MantissaDigits, null, true)
                : b is (byte)'e' or (byte)'E' ? (State.ExpE, null, true)
                : (State.Start, QemuJsonTokenType.Float, false),
            State.Digits => isDigit ? (State.Digits, null, true)
                : b is (byte)'e' or (byte)'E' ? (State.ExpE, null, true)
                : b == (byte)'.' ? (State.Mantissa, null, true)
                : (State.Start, QemuJsonTokenType.Integer, false),
            State.Sign => b == (byte)'0' ? (State.Zero, null, true) : isDigit ? (State.Digits, null, true) : Error,
            State.Keyword => b is >= (byte)'a' and <= (byte)'z' ? (State.Keyword, null, true) : (State.Start, QemuJsonTokenType.Keyword, false),
            _ => b switch
            {
                (byte)'"' => (State.DqString, null, true),
                (byte)'\'' => (State.SqString, null, true),
                (byte)'0' => (State.Zero, null, true),
                >= (byte)'1' and <= (byte)'9' => (State.Digits, null, true),
                (byte)'-' => (State.Sign, null, true),
                (byte)'{' => (State.Start, QemuJsonTokenType.LeftCurly, true),
                (byte)'}' => (State.Start, QemuJsonTokenType.RightCurly, true),
                (byte)'[' => (State.Start, QemuJsonTokenType.LeftSquare, true),
                (byte)']' => (State.Start, QemuJsonTokenType.RightSquare, true),
                (byte)',' => (State.Start, QemuJsonTokenType.Comma, true),
                (byte)':' => (State.Start, QemuJsonTokenType.Colon, true),
                >= (byte)'a' and <= (byte)'z' => (State.Keyword, null, true),
                (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' => (State.Start, null, true),
                _ => Error,
            },
        };
    }

    private static (State Next, QemuJsonTokenType? Token, bool Consumed) Error => (State.Recovery, QemuJsonTokenType.Error, true);
}
