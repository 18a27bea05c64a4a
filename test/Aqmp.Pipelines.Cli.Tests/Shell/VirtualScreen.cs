using System.Text;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>
/// A terminal screen as wide as asked and as tall as it needs to be, that understands what the
/// line editor writes: printable characters (wrapping as a VT100 does, the cursor staying on the
/// last column until the next character), <c>\r</c>, <c>\n</c> (as a terminal with ONLCR: to the
/// start of the next row), <c>\a</c>, and the CSI sequences <c>A</c>/<c>B</c>/<c>C</c>/<c>D</c>
/// (cursor moves), <c>J</c> (erase below), <c>K</c> (erase to end of row), <c>H</c> (home) and
/// <c>2J</c> (erase all). Anything else fails the test.
/// </summary>
internal sealed class VirtualScreen
{
    private readonly List<StringBuilder> _rows = [new()];
    private bool _pendingWrap;

    public VirtualScreen(int width) => Width = width;

    public int Width { get; set; }

    public int Row { get; private set; }

    public int Column { get; private set; }

    /// <summary>Bells rung.</summary>
    public int Bells { get; private set; }

    /// <summary>The rows, trailing spaces and trailing empty rows removed.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            var lines = _rows.Select(r => r.ToString().TrimEnd()).ToList();
            while (lines.Count > 0 && lines[^1].Length == 0)
            {
                lines.RemoveAt(lines.Count - 1);
            }

            return lines;
        }
    }

    /// <summary>The row the cursor is on, trailing spaces removed.</summary>
    public string CursorLine => _rows[Row].ToString().TrimEnd();

    public override string ToString() => string.Join("\n", Lines) + $"\n[cursor at row {Row}, column {Column}]";

    public void Write(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            switch (c)
            {
                case '\r':
                    Column = 0;
                    _pendingWrap = false;
                    break;
                case '\n':
                    Column = 0;
                    _pendingWrap = false;
                    MoveToRow(Row + 1);
                    break;
                case '\a':
                    Bells++;
                    break;
                case '\e':
                    i = Control(text, i);
                    break;
                default:
                    Assert.That(char.IsControl(c), Is.False, $"unexpected control character U+{(int)c:X4} in {Escape(text)}");
                    Put(c);
                    break;
            }
        }
    }

    private void Put(char c)
    {
        if (_pendingWrap)
        {
            _pendingWrap = false;
            Column = 0;
            MoveToRow(Row + 1);
        }

        var row = _rows[Row];
        if (row.Length <= Column)
        {
            row.Append(' ', Column - row.Length + 1);
        }

        row[Column] = c;
        if (Column == Width - 1)
        {
            _pendingWrap = true;
        }
        else
        {
            Column++;
        }
    }

    private int Control(string text, int escape)
    {
        Assert.That(escape + 1 < text.Length && text[escape + 1] == '[', $"only CSI sequences are expected: {Escape(text)}");
        var end = escape + 2;
        while (end < text.Length && (char.IsAsciiDigit(text[end]) || text[end] == ';'))
        {
            end++;
        }

        Assert.That(end, Is.LessThan(text.Length), $"unfinished sequence in {Escape(text)}");
        var parameter = text[(escape + 2)..end];
        var n = parameter.Length == 0 ? 1 : int.Parse(parameter, System.Globalization.CultureInfo.InvariantCulture);
        _pendingWrap = false;
        switch (text[end])
        {
            case 'A':
                Row = Math.Max(0, Row - n);
                break;
            case 'B':
                MoveToRow(Row + n);
                break;
            case 'C':
                Column = Math.Min(Width - 1, Column + n);
                break;
            case 'D':
                Column = Math.Max(0, Column - n);
                break;
            case 'K':
                Truncate(_rows[Row], Column);
                break;
            case 'J' when parameter == "2":
                _rows.ForEach(r => r.Clear());
                break;
            case 'J':
                Truncate(_rows[Row], Column);
                _rows.RemoveRange(Row + 1, _rows.Count - Row - 1);
                break;
            case 'H':
                Row = 0;
                Column = 0;
                break;
            default:
                Assert.Fail($"unexpected sequence ESC[{parameter}{text[end]} in {Escape(text)}");
                break;
        }

        return end;
    }

    private void MoveToRow(int row)
    {
        while (_rows.Count <= row)
        {
            _rows.Add(new StringBuilder());
        }

        Row = row;
    }

    private static void Truncate(StringBuilder row, int column)
    {
        if (row.Length > column)
        {
            row.Length = column;
        }
    }

    private static string Escape(string text) => text.Replace("\e", "\\e", StringComparison.Ordinal).Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
