using System.Threading.Channels;

namespace Aqmp.Pipelines.Cli.Shell.Editor;

/// <summary>
/// The process's console as an <see cref="ITerminal"/>. Keys are read by one background thread
/// (<see cref="Console.ReadKey(bool)"/> blocks and cannot be cancelled) into a queue, so waiting
/// for a key can be cancelled without losing it, and Ctrl-C arrives as a key
/// (<see cref="Console.TreatControlCAsInput"/>) rather than as SIGINT while the shell runs.
/// </summary>
internal sealed class SystemTerminal : ITerminal
{
    private readonly Channel<ConsoleKeyInfo> _keys = Channel.CreateUnbounded<ConsoleKeyInfo>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly TextWriter _output;
    private readonly TextWriter _error;

    /// <summary>
    /// Takes over the console's input at once, before anything is prompted: Ctrl-C becomes a key
    /// (not SIGINT, which would end the tool) and keys typed from now on are read without echo and
    /// kept until asked for. Output goes to <paramref name="output"/> and <paramref name="error"/>
    /// (normally the console's).
    /// </summary>
    public SystemTerminal(TextWriter output, TextWriter error)
    {
        _output = output;
        _error = error;
        Console.TreatControlCAsInput = true;
        new Thread(Pump) { IsBackground = true, Name = "aqmp keys" }.Start();
    }

    /// <summary>The width assumed when the terminal does not tell its own.</summary>
    public const int DefaultWidth = 80;

    /// <summary>The terminal's width in columns, or <see cref="DefaultWidth"/> when it reports none.</summary>
    public int Width
    {
        get
        {
            // A pseudo-terminal nobody sized (as under script(1) without a terminal) reports 0.
            try
            {
                return Console.WindowWidth is > 0 and var width ? width : DefaultWidth;
            }
            catch (IOException)
            {
                return DefaultWidth;
            }
        }
    }

    /// <inheritdoc/>
    public ValueTask<ConsoleKeyInfo> ReadKeyAsync(CancellationToken cancellationToken) => ReadCoreAsync(cancellationToken);

    /// <inheritdoc/>
    public void Write(string text)
    {
        _output.Write(text);
        _output.Flush();
    }

    /// <inheritdoc/>
    public void WriteError(string text)
    {
        _error.Write(text);
        _error.Flush();
    }

    private async ValueTask<ConsoleKeyInfo> ReadCoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _keys.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException ex)
        {
            throw new EndOfStreamException("the terminal's input has ended", ex);
        }
    }

    /// <summary>Reads keys until the input ends (the thread is a background one: it ends with the process).</summary>
    private void Pump()
    {
        try
        {
            while (true)
            {
                _keys.Writer.TryWrite(Console.ReadKey(intercept: true));
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException)
        {
            _keys.Writer.TryComplete();
        }
    }
}
