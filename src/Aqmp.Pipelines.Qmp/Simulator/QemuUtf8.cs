using System.Text;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// QEMU's reading of modified UTF-8 (<c>mod_utf8_codepoint</c>): sequences of up to six bytes,
/// no surrogates, no noncharacters, nothing beyond U+10FFFF, no overlong form except
/// <c>C0 80</c> for U+0000.
/// </summary>
internal static class QemuUtf8
{
    private static readonly int[] MinimumCodePoint = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];

    /// <summary>Decodes the code point at the start of <paramref name="bytes"/> (at most six bytes read).</summary>
    /// <param name="bytes">The bytes; an empty span or a leading NUL decodes as invalid.</param>
    /// <param name="length">How many bytes QEMU steps over: the sequence, or up to the first missing continuation byte.</param>
    /// <returns>The code point, or -1 when the bytes are not a valid sequence.</returns>
    public static int CodePoint(ReadOnlySpan<byte> bytes, out int length)
    {
        length = 0;
        if (bytes.IsEmpty || bytes[0] == 0)
        {
            return -1;
        }

        int first = bytes[0];
        length = 1;
        if (first < 0x80)
        {
            return first;
        }

        if (first >= 0xFE || (first & 0x40) == 0)
        {
            return -1;
        }

        var count = 0;
        var mask = 0x80;
        for (; (first & mask) != 0; mask >>= 1)
        {
            count++;
        }

        var codePoint = first & (mask - 1);
        for (var i = 1; i < count; i++)
        {
            var next = i < bytes.Length && i < 6 ? bytes[i] : 0;
            if ((next & 0xC0) != 0x80)
            {
                return -1;
            }

            length++;
            codePoint = (codePoint << 6) | (next & 0x3F);
        }

        if (!IsValid(codePoint) || (codePoint < MinimumCodePoint[count - 2] && !(codePoint == 0 && count == 2)))
        {
            return -1;
        }

        return codePoint;
    }

    /// <summary>Whether QEMU accepts a code point: within Unicode, not a surrogate, not a noncharacter.</summary>
    /// <param name="codePoint">The code point.</param>
    /// <returns>Whether it is valid.</returns>
    public static bool IsValid(int codePoint)
        => codePoint is >= 0 and <= 0x10FFFF
            && (codePoint & 0x1FF800) != 0xD800
            && codePoint is not (>= 0xFDD0 and <= 0xFDEF)
            && (codePoint & 0xFFFE) != 0xFFFE;

    /// <summary>
    /// Turns bytes QEMU prints as a C string into text the way its JSON writer reads them: up to
    /// the first NUL, each invalid sequence as U+FFFD.
    /// </summary>
    /// <param name="bytes">The bytes.</param>
    /// <returns>The text.</returns>
    public static string DecodeLossy(ReadOnlySpan<byte> bytes)
    {
        var nul = bytes.IndexOf((byte)0);
        if (nul >= 0)
        {
            bytes = bytes[..nul];
        }

        var text = new StringBuilder(bytes.Length);
        while (!bytes.IsEmpty)
        {
            var codePoint = CodePoint(bytes, out var length);
            text.Append(codePoint < 0 ? "\uFFFD" : char.ConvertFromUtf32(codePoint == 0 ? 0 : codePoint));
            bytes = bytes[Math.Max(length, 1)..];
        }

        return text.ToString();
    }

    /// <summary>The bytes QEMU keeps for a string: UTF-8, with U+0000 as <c>C0 80</c>.</summary>
    /// <param name="text">The text.</param>
    /// <returns>The modified UTF-8 bytes.</returns>
    public static byte[] Encode(string text)
    {
        var utf8 = Encoding.UTF8.GetBytes(text);
        if (!utf8.AsSpan().Contains((byte)0))
        {
            return utf8;
        }

        var bytes = new List<byte>(utf8.Length + 4);
        foreach (var b in utf8)
        {
            if (b == 0)
            {
                bytes.Add(0xC0);
                bytes.Add(0x80);
            }
            else
            {
                bytes.Add(b);
            }
        }

        return [.. bytes];
    }
}
