using System.Globalization;
using System.Text;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// Numbers as QEMU 7.2 reads and prints them: an integer token is a signed 64-bit integer if it
/// fits, else an unsigned one, else a double; a double prints as C's <c>%.17g</c>. A double read
/// is held as text that still reads as a double (<c>1000.0</c> for <c>1e3</c>), so that argument
/// checks can tell it from an integer as QEMU does; <see cref="QemuJsonWriter"/> prints it as QEMU.
/// </summary>
internal static class QemuNumber
{
    /// <summary>The number QEMU holds for a number token it has read, as JSON text.</summary>
    /// <param name="token">The token's text.</param>
    /// <param name="isInteger">Whether the lexer made it an integer token.</param>
    /// <returns>
    /// An integer's digits, or a double as <c>%.17g</c> prints it with <c>.0</c> added where that has
    /// neither a point nor an exponent (<c>inf</c> or <c>-inf</c> for a double out of range, as QEMU prints it).
    /// </returns>
    public static string Normalize(string token, bool isInteger)
    {
        if (isInteger)
        {
            if (long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var signed))
            {
                return signed.ToString(CultureInfo.InvariantCulture);
            }

            if (token[0] != '-' && ulong.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var unsigned))
            {
                return unsigned.ToString(CultureInfo.InvariantCulture);
            }
        }

        var text = FormatG17(double.Parse(token, NumberStyles.Float, CultureInfo.InvariantCulture));
        return text.AsSpan().ContainsAny('.', 'e', 'n') ? text : text + ".0";
    }

    /// <summary>Whether JSON number text is a double (has a point or an exponent), not an integer.</summary>
    /// <param name="text">The number's text.</param>
    /// <returns>True for a double.</returns>
    public static bool IsDouble(ReadOnlySpan<char> text) => text.ContainsAny('.', 'e', 'E');

    /// <summary>Formats a double as C's <c>printf("%.17g")</c>.</summary>
    /// <param name="value">The value.</param>
    /// <returns>The text.</returns>
    public static string FormatG17(double value)
    {
        if (double.IsNaN(value))
        {
            return double.IsNegative(value) ? "-nan" : "nan";
        }

        if (double.IsInfinity(value))
        {
            return value < 0 ? "-inf" : "inf";
        }

        // 17 significant digits, as d.dddddddddddddddde±x.
        var scientific = value.ToString("E16", CultureInfo.InvariantCulture);
        var sign = scientific[0] == '-' ? "-" : "";
        var body = sign.Length > 0 ? scientific[1..] : scientific;
        var e = body.IndexOf('E', StringComparison.Ordinal);
        var digits = body[..e].Replace(".", "", StringComparison.Ordinal);
        var exponent = int.Parse(body[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        if (value == 0)
        {
            exponent = 0;
        }

        var text = new StringBuilder(sign);
        if (exponent is < -4 or >= 17)
        {
            text.Append(digits[0]);
            var fraction = digits[1..].TrimEnd('0');
            if (fraction.Length > 0)
            {
                text.Append('.').Append(fraction);
            }

            text.Append('e').Append(exponent < 0 ? '-' : '+').Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
        }
        else if (exponent >= 0)
        {
            text.Append(digits[..(exponent + 1)]);
            var fraction = digits[(exponent + 1)..].TrimEnd('0');
            if (fraction.Length > 0)
            {
                text.Append('.').Append(fraction);
            }
        }
        else
        {
            text.Append("0.").Append('0', -exponent - 1).Append(digits.TrimEnd('0'));
        }

        return text.ToString();
    }
}
