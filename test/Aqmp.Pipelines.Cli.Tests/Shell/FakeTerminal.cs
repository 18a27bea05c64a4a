using System.Text;
using System.Threading.Channels;
using Aqmp.Pipelines.Cli.Shell.Editor;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>
/// An <see cref="ITerminal"/> for specifications: keys are queued by the test (<see cref="Type"/>,
/// <see cref="Press"/>), output and error both land on one <see cref="VirtualScreen"/>, and every
/// write is also kept as raw text.
/// </summary>
internal sealed class FakeTerminal : ITerminal
{
    private readonly Channel<ConsoleKeyInfo> _keys = Channel.CreateUnbounded<ConsoleKeyInfo>();
    private readonly StringBuilder _raw = new();
    private readonly Lock _lock = new();
    private readonly Lock _counts = new();
    private int _written;
    private int _taken;
    private bool _reading;

    public FakeTerminal(int width = 80) => Screen = new VirtualScreen(width);

    public VirtualScreen Screen { get; }

    public int Width => Screen.Width;

    /// <summary>Everything written, in order, control sequences included.</summary>
    public string Raw
    {
        get
        {
            lock (_lock)
            {
                return _raw.ToString();
            }
        }
    }

    /// <summary>Whether the screen meets <paramref name="condition"/>, looked at between writes.</summary>
    public bool Shows(Func<VirtualScreen, bool> condition)
    {
        lock (_lock)
        {
            return condition(Screen);
        }
    }

    /// <summary>Errors written, in order.</summary>
    public List<string> Errors { get; } = [];

    /// <summary>
    /// Completes once the reader asks for a key while none is queued: every key queued before has
    /// been read and handled (the editor handles a key before asking for the next).
    /// </summary>
    public async Task WhenIdle()
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        while (true)
        {
            lock (_counts)
            {
                if (_reading && _taken == _written)
                {
                    return;
                }
            }

            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"the editor did not read all keys ({_taken} of {_written}):\n{Screen}");
            await Task.Delay(2);
        }
    }

    public ValueTask<ConsoleKeyInfo> ReadKeyAsync(CancellationToken cancellationToken) => ReadCoreAsync(cancellationToken);

    public void Write(string text)
    {
        lock (_lock)
        {
            _raw.Append(text);
            Screen.Write(text);
        }
    }

    public void WriteError(string text)
    {
        lock (_lock)
        {
            Errors.Add(text);
            Screen.Write(text);
        }
    }

    private void Enqueue(ConsoleKeyInfo key)
    {
        lock (_counts)
        {
            _written++;
        }

        _keys.Writer.TryWrite(key);
    }

    /// <summary>Queues each character of <paramref name="text"/> as a key press.</summary>
    public FakeTerminal Type(string text)
    {
        foreach (var c in text)
        {
            var key = c switch
            {
                >= 'a' and <= 'z' => (ConsoleKey)(ConsoleKey.A + (c - 'a')),
                >= 'A' and <= 'Z' => (ConsoleKey)(ConsoleKey.A + (c - 'A')),
                >= '0' and <= '9' => (ConsoleKey)(ConsoleKey.D0 + (c - '0')),
                ' ' => ConsoleKey.Spacebar,
                _ => ConsoleKey.Oem1,
            };
            Enqueue(new ConsoleKeyInfo(c, key, shift: char.IsAsciiLetterUpper(c), alt: false, control: false));
        }

        return this;
    }

    /// <summary>Queues <paramref name="key"/> pressed <paramref name="times"/> times, as .NET reports it on Unix (KeyChar included).</summary>
    public FakeTerminal Press(ConsoleKey key, int times = 1)
    {
        var keyChar = key switch
        {
            ConsoleKey.Enter => '\r',
            ConsoleKey.Backspace => '\x7f',
            ConsoleKey.Tab => '\t',
            ConsoleKey.Escape => '\e',
            _ => '\0',
        };
        for (var i = 0; i < times; i++)
        {
            Enqueue(new ConsoleKeyInfo(keyChar, key, shift: false, alt: false, control: false));
        }

        return this;
    }

    /// <summary>Queues Ctrl with the letter <paramref name="letter"/> (for example 'U').</summary>
    public FakeTerminal Ctrl(char letter)
    {
        var upper = char.ToUpperInvariant(letter);
        Enqueue(new ConsoleKeyInfo((char)(upper - 'A' + 1), (ConsoleKey)(ConsoleKey.A + (upper - 'A')), shift: false, alt: false, control: true));
        return this;
    }

    /// <summary>Ends the input: reads after the queued keys fail with <see cref="EndOfStreamException"/>.</summary>
    public void EndInput() => _keys.Writer.TryComplete();

    private async ValueTask<ConsoleKeyInfo> ReadCoreAsync(CancellationToken cancellationToken)
    {
        lock (_counts)
        {
            _reading = true;
        }

        try
        {
            var key = await _keys.Reader.ReadAsync(cancellationToken);
            lock (_counts)
            {
                _reading = false;
                _taken++;
            }

            return key;
        }
        catch (OperationCanceledException)
        {
            lock (_counts)
            {
                _reading = false;
            }

            throw;
        }
        catch (ChannelClosedException ex)
        {
            throw new EndOfStreamException("no more keys", ex);
        }
    }
}
