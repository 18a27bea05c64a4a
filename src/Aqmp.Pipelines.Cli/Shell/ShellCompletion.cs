using System.Collections.Frozen;
using System.Text.Json;
using Aqmp.Pipelines.Cli.Shell.Editor;

namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>
/// Tab completion for shell lines: the first word completes to a command name the server offers
/// (from <c>query-commands</c>), a later word to one of that command's argument names followed by
/// <c>=</c> (from <c>query-qmp-schema</c>). Empty until filled; filled from another thread while
/// the user may already be typing, so each fill replaces the whole set at once.
/// </summary>
internal sealed class ShellCompletion : ICompletionSource
{
    private volatile string[] _commands = [];
    private volatile FrozenDictionary<string, string[]> _arguments = FrozenDictionary<string, string[]>.Empty;

    /// <summary>Sets the command names.</summary>
    public void SetCommands(IEnumerable<string> names) => _commands = [.. names.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];

    /// <summary>Sets each command's argument names.</summary>
    public void SetArguments(IReadOnlyDictionary<string, IReadOnlyList<string>> arguments) =>
        _arguments = arguments.ToFrozenDictionary(p => p.Key, p => p.Value.Order(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal);

    /// <summary>
    /// Sets the argument names from a <c>query-qmp-schema</c> return value: each command's
    /// <c>arg-type</c> object's member names, and for a union those of every branch
    /// (<c>variants</c>). Entries of other shapes are skipped.
    /// </summary>
    public void SetArgumentsFromSchema(JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Array)
        {
            return;
        }

        var objects = new Dictionary<string, (string[] Members, string[] Variants)>(StringComparer.Ordinal);
        var argumentTypes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entity in schema.EnumerateArray())
        {
            if (entity.ValueKind != JsonValueKind.Object || Text(entity, "name") is not { } name)
            {
                continue;
            }

            switch (Text(entity, "meta-type"))
            {
                case "command" when Text(entity, "arg-type") is { } argType:
                    argumentTypes[name] = argType;
                    break;
                case "object":
                    objects[name] = (Names(entity, "members", "name"), Names(entity, "variants", "type"));
                    break;
            }
        }

        var arguments = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (command, type) in argumentTypes)
        {
            if (objects.TryGetValue(type, out var argumentType))
            {
                // A union's branches add their members: offered whatever the discriminator will be.
                var names = argumentType.Members
                    .Concat(argumentType.Variants.SelectMany(v => objects.TryGetValue(v, out var variant) ? variant.Members : []))
                    .Distinct(StringComparer.Ordinal)
                    .ToArray();
                if (names.Length > 0)
                {
                    arguments[command] = names;
                }
            }
        }

        SetArguments(arguments);
    }

    /// <summary>The string <paramref name="field"/> of each object in the array <paramref name="property"/> of <paramref name="entity"/>.</summary>
    private static string[] Names(JsonElement entity, string property, string field) =>
        entity.TryGetProperty(property, out var list) && list.ValueKind == JsonValueKind.Array
            ? [.. list.EnumerateArray().Select(m => m.ValueKind == JsonValueKind.Object ? Text(m, field) : null).OfType<string>()]
            : [];

    /// <inheritdoc/>
    public Completion Complete(string line, int cursor)
    {
        var start = cursor;
        while (start > 0 && !char.IsWhiteSpace(line[start - 1]))
        {
            start--;
        }

        var word = line[start..cursor];
        if (line[..start].Trim().Length == 0)
        {
            return word.StartsWith('{') ? Completion.None : new Completion(start, Matching(_commands, word), " ");
        }

        var command = line.TrimStart().Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries)[0];
        if (word.Contains('=', StringComparison.Ordinal) || !_arguments.TryGetValue(command, out var names))
        {
            return Completion.None;
        }

        return new Completion(start, Matching(names, word).Select(n => n + "=").ToArray(), "");
    }

    private static string[] Matching(string[] names, string prefix) => [.. names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal))];

    private static string? Text(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
