using System.Buffers;
using System.Globalization;
using System.Text;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>What a generated QMP server message must decode to.</summary>
/// <param name="Index">Its position in the stream, from 0.</param>
/// <param name="Kind">Return, error or event.</param>
/// <param name="Root">The whole object, members in wire order.</param>
/// <param name="Id">The <c>id</c> member's value, when present.</param>
/// <param name="ReturnValue">A return's <c>return</c> value.</param>
/// <param name="ErrorClass">An error's class.</param>
/// <param name="ErrorDescription">An error's description.</param>
/// <param name="EventName">An event's name.</param>
/// <param name="EventData">An event's <c>data</c>, when present.</param>
/// <param name="Timestamp">An event's timestamp.</param>
internal sealed record QmpExpectation(
    int Index,
    QmpMessageKind Kind,
    JsonObjectModel Root,
    object? Id,
    object? ReturnValue,
    string? ErrorClass,
    string? ErrorDescription,
    string? EventName,
    object? EventData,
    DateTimeOffset? Timestamp);

/// <summary>
/// A seeded stream of random, valid QMP server messages, one JSON object a line: returns with
/// random nested values, errors, events with timestamps, ids of every JSON type. Two instances with
/// the same seed produce the same messages, so a receiver regenerates what it must decode.
/// </summary>
/// <remarks>
/// Each message is a model (<see cref="QmpExpectation"/>) written as JSON text with random
/// formatting: compact, or spaces, tabs and CRs between any two tokens (never LF, which ends the
/// line); strings with raw multi-byte UTF-8 or <c>\uXXXX</c> escapes (surrogate pairs both ways),
/// short escapes, escaped <c>/</c>; numbers as any valid token (<c>-0</c>, exponents, integers past
/// 64 bits). Lines end with LF or CRLF. A few messages are big (long strings, long arrays) or deep
/// (nesting up to 100 levels).
/// </remarks>
internal sealed class QmpMessageStream(int seed, int count) : IFrameSource
{
    private const int MaximumDepth = 4;

    private static readonly string[] ErrorClasses = ["GenericError", "CommandNotFound", "DeviceNotActive", "DeviceNotFound", "KVMMissingCap"];
    private static readonly int[] SpecialBmp = [0x2028, 0x2029, 0xFEFF, 0xFFFD, 0xFFFF, 0x00A0, 0x0800];

    private readonly Random _random = new(seed);
    private readonly ArrayBufferWriter<byte> _wire = new(4096);
    private int _whitespacePercent;

    /// <summary>How many messages the stream holds.</summary>
    public int Count { get; } = count;

    /// <summary>How many messages were produced so far.</summary>
    public int Produced { get; private set; }

    /// <summary>The last message's wire bytes, terminator included (valid until the next call).</summary>
    public ReadOnlyMemory<byte> Wire => _wire.WrittenMemory;

    /// <summary>Produces the next message: its expectation, and its bytes in <see cref="Wire"/>.</summary>
    /// <returns>The expectation.</returns>
    /// <exception cref="InvalidOperationException">All <see cref="Count"/> messages were produced.</exception>
    public QmpExpectation Next()
    {
        if (Produced == Count)
        {
            throw new InvalidOperationException($"All {Count} messages were produced.");
        }

        var expectation = _random.Next(100) switch
        {
            < 45 => NextReturn(),
            < 65 => NextError(),
            _ => NextEvent(),
        };

        _wire.ResetWrittenCount();
        _whitespacePercent = _random.Next(4) switch
        {
            0 => 0,
            1 => 5,
            2 => 30,
            _ => 90,
        };
        Whitespace();
        WriteValue(expectation.Root);
        Whitespace();
        Ascii(_random.Next(2) == 0 ? "\n" : "\r\n");
        Produced++;
        return expectation;
    }

    /// <inheritdoc />
    public bool TryAppendNext(IBufferWriter<byte> output)
    {
        if (Produced == Count)
        {
            return false;
        }

        Next();
        output.Write(_wire.WrittenSpan);
        return true;
    }

    // ------------------------------------------------------------------------------------
    // Messages
    // ------------------------------------------------------------------------------------

    private QmpExpectation NextReturn()
    {
        var value = _random.Next(1000) switch
        {
            < 3 => BigValue(),
            < 8 => DeepValue(),
            < 300 => new JsonObjectModel(),
            _ => NextValue(0),
        };
        var root = new JsonObjectModel { new("return", value) };
        var id = MaybeId(root);
        Shuffle(root);
        return new QmpExpectation(Produced, QmpMessageKind.Return, root, id, value, null, null, null, null, null);
    }

    private QmpExpectation NextError()
    {
        var errorClass = _random.Next(4) == 0 ? NextString(16) : ErrorClasses[_random.Next(ErrorClasses.Length)];
        var description = NextString(60);
        var error = new JsonObjectModel { new("class", errorClass), new("desc", description) };
        Shuffle(error);
        var root = new JsonObjectModel { new("error", error) };
        var id = MaybeId(root);
        Shuffle(root);
        return new QmpExpectation(Produced, QmpMessageKind.Error, root, id, null, errorClass, description, null, null, null);
    }

    private QmpExpectation NextEvent()
    {
        var name = _random.Next(5) == 0 ? NextString(20) : NextEventName();
        var seconds = _random.Next(3) == 0 ? _random.NextInt64(0, 253_402_300_799) : _random.Next(1_500_000_000, 2_000_000_000);
        var microseconds = _random.Next(1_000_000);
        var timestamp = new JsonObjectModel
        {
            new("seconds", new JsonNumberModel(seconds.ToString(CultureInfo.InvariantCulture))),
            new("microseconds", new JsonNumberModel(microseconds.ToString(CultureInfo.InvariantCulture))),
        };
        Shuffle(timestamp);
        var root = new JsonObjectModel { new("event", name), new("timestamp", timestamp) };
        object? data = null;
        if (_random.Next(5) != 0)
        {
            data = NextObject(1);
            root.Add(new("data", data));
        }

        Shuffle(root);
        var when = DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(microseconds * TimeSpan.TicksPerMicrosecond);
        return new QmpExpectation(Produced, QmpMessageKind.Event, root, null, null, null, null, name, data, when);
    }

    /// <summary>Adds an <c>id</c> member of a random JSON type to seven messages in ten.</summary>
    private object? MaybeId(JsonObjectModel root)
    {
        if (_random.Next(10) >= 7)
        {
            return null;
        }

        object id = _random.Next(20) switch
        {
            < 8 => new JsonNumberModel(_random.Next(0, 1_000_000).ToString(CultureInfo.InvariantCulture)),
            < 13 => NextString(24),
            < 15 => NextObject(MaximumDepth - 1),
            < 17 => NextArray(MaximumDepth - 1),
            17 => JsonNullModel.Instance,
            18 => _random.Next(2) == 0,
            _ => NextNumber(),
        };
        root.Add(new("id", id));
        return id;
    }

    private object BigValue()
    {
        if (_random.Next(2) == 0)
        {
            return NextString(_random.Next(10_000, 60_000), exactLength: true);
        }

        var array = new JsonArrayModel();
        var length = _random.Next(500, 3000);
        for (var i = 0; i < length; i++)
        {
            array.Add(NextNumber());
        }

        return array;
    }

    private object DeepValue()
    {
        var depth = _random.Next(20, 101);
        object value = NextScalar();
        for (var level = 0; level < depth; level++)
        {
            value = _random.Next(2) == 0
                ? new JsonArrayModel { value }
                : new JsonObjectModel { new(NextString(6), value) };
        }

        return value;
    }

    private string NextEventName()
    {
        var builder = new StringBuilder();
        var length = _random.Next(3, 25);
        for (var i = 0; i < length; i++)
        {
            builder.Append(i > 0 && _random.Next(6) == 0 ? '_' : (char)('A' + _random.Next(26)));
        }

        return builder.ToString();
    }

    // ------------------------------------------------------------------------------------
    // Values
    // ------------------------------------------------------------------------------------

    private object NextValue(int depth)
    {
        var roll = depth >= MaximumDepth ? _random.Next(56) : _random.Next(100);
        return roll switch
        {
            < 24 => NextString(24),
            < 44 => NextNumber(),
            < 50 => _random.Next(2) == 0,
            < 56 => JsonNullModel.Instance,
            < 78 => NextArray(depth + 1),
            _ => NextObject(depth + 1),
        };
    }

    private object NextScalar() => NextValue(MaximumDepth);

    private JsonArrayModel NextArray(int depth)
    {
        var array = new JsonArrayModel();
        var size = NextSize(depth);
        for (var i = 0; i < size; i++)
        {
            array.Add(NextValue(depth));
        }

        return array;
    }

    private JsonObjectModel NextObject(int depth)
    {
        var obj = new JsonObjectModel();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var size = NextSize(depth);
        while (obj.Count < size)
        {
            var name = _random.Next(3) == 0 ? NextEventName().ToLowerInvariant().Replace('_', '-') : NextString(12);
            if (names.Add(name))
            {
                obj.Add(new(name, NextValue(depth)));
            }
        }

        return obj;
    }

    private int NextSize(int depth) => depth >= MaximumDepth ? 0 : _random.Next(10) switch
    {
        < 2 => 0,
        < 6 => _random.Next(1, 3),
        < 9 => _random.Next(3, 6),
        _ => _random.Next(6, 12),
    };

    /// <summary>A valid JSON number token of a random shape.</summary>
    private JsonNumberModel NextNumber()
    {
        var text = _random.Next(20) switch
        {
            < 7 => _random.Next(-1000, 1001).ToString(CultureInfo.InvariantCulture),
            < 9 => _random.NextInt64(long.MinValue, long.MaxValue).ToString(CultureInfo.InvariantCulture),
            9 => new[] { "-0", "0", "0.0", "-0.0", "0e0", "-0E-0", long.MinValue.ToString(CultureInfo.InvariantCulture), long.MaxValue.ToString(CultureInfo.InvariantCulture), ulong.MaxValue.ToString(CultureInfo.InvariantCulture) }[_random.Next(9)],
            10 => (_random.Next(2) == 0 ? "-" : string.Empty) + (char)('1' + _random.Next(9)) + Digits(_random.Next(18, 40)),
            < 15 => Integer() + "." + Digits(_random.Next(1, 13)),
            _ => (_random.Next(2) == 0 ? Integer() : Integer() + "." + Digits(_random.Next(1, 6)))
                + (_random.Next(2) == 0 ? "e" : "E")
                + new[] { string.Empty, "+", "-" }[_random.Next(3)]
                + Digits(_random.Next(1, 4)),
        };
        return new JsonNumberModel(text);
    }

    private string Integer()
    {
        var sign = _random.Next(3) == 0 ? "-" : string.Empty;
        return _random.Next(10) == 0 ? sign + "0" : sign + (char)('1' + _random.Next(9)) + Digits(_random.Next(0, 9));
    }

    private string Digits(int count)
    {
        var digits = new char[count];
        for (var i = 0; i < count; i++)
        {
            digits[i] = (char)('0' + _random.Next(10));
        }

        return new string(digits);
    }

    /// <summary>
    /// A random string of up to <paramref name="maximumLength"/> code points: mostly ASCII (quotes,
    /// backslashes and slashes included), control characters, two-, three- and four-byte UTF-8
    /// (line and paragraph separators, BOM, U+FFFF, supplementary planes), never a lone surrogate.
    /// </summary>
    private string NextString(int maximumLength, bool exactLength = false)
    {
        var length = exactLength ? maximumLength : _random.Next(3) == 0 ? _random.Next(0, 4) : _random.Next(0, maximumLength + 1);
        var builder = new StringBuilder(length);
        Span<char> utf16 = stackalloc char[2];
        for (var i = 0; i < length; i++)
        {
            var rune = NextRune();
            builder.Append(utf16[..rune.EncodeToUtf16(utf16)]);
        }

        return builder.ToString();
    }

    private Rune NextRune() => _random.Next(100) switch
    {
        < 55 => new Rune(_random.Next(0x20, 0x7F)),
        < 60 => new Rune(_random.Next(0x21) is var c && c == 0x20 ? 0x7F : c),
        < 65 => new Rune("\"\\/"[_random.Next(3)]),
        < 75 => new Rune(_random.Next(0x80, 0x800)),
        < 88 => _random.Next(0x800, 0x10000) is var bmp && bmp is >= 0xD800 and <= 0xDFFF ? new Rune(SpecialBmp[_random.Next(SpecialBmp.Length)]) : new Rune(bmp),
        _ => new Rune(_random.Next(0x10000, 0x110000)),
    };

    // ------------------------------------------------------------------------------------
    // JSON text with random formatting
    // ------------------------------------------------------------------------------------

    private void WriteValue(object value)
    {
        switch (value)
        {
            case string text:
                WriteString(text);
                break;
            case JsonNumberModel number:
                Ascii(number.Text);
                break;
            case bool flag:
                Ascii(flag ? "true" : "false");
                break;
            case JsonNullModel:
                Ascii("null");
                break;
            case JsonArrayModel array:
                Ascii("[");
                for (var i = 0; i < array.Count; i++)
                {
                    Whitespace();
                    WriteValue(array[i]);
                    Whitespace();
                    if (i < array.Count - 1)
                    {
                        Ascii(",");
                    }
                }

                Whitespace();
                Ascii("]");
                break;
            case JsonObjectModel obj:
                Ascii("{");
                for (var i = 0; i < obj.Count; i++)
                {
                    Whitespace();
                    WriteString(obj[i].Key);
                    Whitespace();
                    Ascii(":");
                    Whitespace();
                    WriteValue(obj[i].Value);
                    Whitespace();
                    if (i < obj.Count - 1)
                    {
                        Ascii(",");
                    }
                }

                Whitespace();
                Ascii("}");
                break;
            default:
                throw new ArgumentException($"Not a JSON model: {value.GetType()}", nameof(value));
        }
    }

    private void WriteString(string text)
    {
        Ascii("\"");
        foreach (var rune in text.EnumerateRunes())
        {
            WriteRune(rune);
        }

        Ascii("\"");
    }

    private void WriteRune(Rune rune)
    {
        var value = rune.Value;
        switch (value)
        {
            case < 0x20:
                var shortEscape = value switch
                {
                    '\b' => "\\b",
                    '\f' => "\\f",
                    '\n' => "\\n",
                    '\r' => "\\r",
                    '\t' => "\\t",
                    _ => null,
                };
                if (shortEscape is not null && _random.Next(2) == 0)
                {
                    Ascii(shortEscape);
                }
                else
                {
                    Escape(value);
                }

                return;
            case '"':
            case '\\':
                if (_random.Next(10) < 7)
                {
                    Ascii(value == '"' ? "\\\"" : "\\\\");
                }
                else
                {
                    Escape(value);
                }

                return;
            case '/':
                switch (_random.Next(3))
                {
                    case 0:
                        Ascii("\\/");
                        break;
                    case 1:
                        Escape(value);
                        break;
                    default:
                        Ascii("/");
                        break;
                }

                return;
            case < 0x80:
                if (_random.Next(30) == 0)
                {
                    Escape(value);
                }
                else
                {
                    Raw(rune);
                }

                return;
            case < 0x10000:
                if (_random.Next(5) == 0)
                {
                    Escape(value);
                }
                else
                {
                    Raw(rune);
                }

                return;
            default:
                if (_random.Next(10) < 3)
                {
                    Span<char> pair = stackalloc char[2];
                    rune.EncodeToUtf16(pair);
                    Escape(pair[0]);
                    Escape(pair[1]);
                }
                else
                {
                    Raw(rune);
                }

                return;
        }
    }

    /// <summary>Writes <c>\uXXXX</c>, hex digits upper or lower case at random.</summary>
    private void Escape(int utf16)
        => Ascii("\\u" + utf16.ToString(_random.Next(2) == 0 ? "X4" : "x4", CultureInfo.InvariantCulture));

    private void Raw(Rune rune)
    {
        var span = _wire.GetSpan(4);
        _wire.Advance(rune.EncodeToUtf8(span));
    }

    /// <summary>Between two tokens: nothing, or 1 to 3 of space, tab and CR (never LF), at this message's rate.</summary>
    private void Whitespace()
    {
        if (_whitespacePercent == 0 || _random.Next(100) >= _whitespacePercent)
        {
            return;
        }

        var count = _random.Next(1, 4);
        for (var i = 0; i < count; i++)
        {
            Ascii(" \t\r"[_random.Next(3)] switch
            {
                ' ' => " ",
                '\t' => "\t",
                _ => "\r",
            });
        }
    }

    private void Ascii(string text)
    {
        var span = _wire.GetSpan(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            span[i] = (byte)text[i];
        }

        _wire.Advance(text.Length);
    }

    private void Shuffle<T>(List<T> list)
    {
        for (var i = list.Count - 1; i > 0; i--)
        {
            var j = _random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }
}
