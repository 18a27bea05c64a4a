using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>
/// qmp-shell's transaction syntax: a line <c>transaction(</c> opens a transaction, each following
/// line <c>type key=value ...</c> adds an action (nothing is sent), and <c>)</c> closes it, giving
/// one <c>transaction</c> command whose <c>actions</c> are <c>{"type": ..., "data": {...}}</c> in
/// the order typed. As in qmp-shell, actions may follow <c>transaction(</c> on its line, and the
/// last action's line may end with <c>)</c>.
/// </summary>
internal sealed class ShellTransaction
{
    /// <summary>The prompt qmp-shell shows while a transaction is open.</summary>
    public const string Prompt = "TRANS> ";

    private List<(string Type, JsonElement Data)>? _actions;

    /// <summary>Whether a transaction is open (its actions are being typed).</summary>
    public bool IsOpen => _actions is not null;

    /// <summary>
    /// Whether <paramref name="tokens"/> (a line split by <see cref="ShellLineParser.Tokenize"/>)
    /// belong to the transaction: they open one, or one is open.
    /// </summary>
    public bool Takes(IReadOnlyList<string> tokens) => IsOpen || (tokens.Count > 0 && tokens[0] == "transaction(");

    /// <summary>
    /// Reads one line of a transaction: returns the <c>transaction</c> command when the line closes
    /// it, null while it stays open. A line that fails to parse is not added; the transaction stays open.
    /// </summary>
    /// <exception cref="FormatException">The line is not an action, or text follows the closing <c>)</c>.</exception>
    public QmpMessage? Read(IReadOnlyList<string> tokens)
    {
        var rest = tokens.ToList();
        if (rest.Count > 0 && rest[0] == "transaction(")
        {
            _actions = [];
            rest.RemoveAt(0);
        }

        if (rest.Count > 0 && rest[0] == ")")
        {
            return rest.Count > 1 ? throw new FormatException("unexpected input after the ')' that closes the transaction") : Close();
        }

        if (rest.Count == 0)
        {
            return null;
        }

        var closes = rest[^1] == ")";
        if (closes)
        {
            rest.RemoveAt(rest.Count - 1);
        }

        _actions!.Add((ShellLineParser.CommandName(rest[0]), ShellLineParser.Arguments(rest.Skip(1))));
        return closes ? Close() : null;
    }

    private QmpMessage Close()
    {
        var actions = _actions!;
        _actions = null;
        return QmpMessage.Command("transaction", QmpJson.Write(writer =>
        {
            writer.WriteStartObject();
            writer.WriteStartArray("actions");
            foreach (var (type, data) in actions)
            {
                writer.WriteStartObject();
                writer.WriteString("type", type);
                writer.WritePropertyName("data");
                data.WriteTo(writer);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }));
    }
}
