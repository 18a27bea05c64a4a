using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>
/// What a shell printed on piped input (output and errors in one stream, in order), read into
/// entries that mean the same for QEMU's qmp-shell and for <c>aqmp shell</c>, so that a test can
/// compare the two. What differs by design is dropped or mapped: the banner; qmp-shell's prompts
/// (it prints them even on piped input); qmp-shell's reply envelope (<c>{"return": X}</c>) against
/// aqmp's bare X; qmp-shell's <c>{"error": {...}}</c> against aqmp's <c>error: Class: desc</c>; the
/// two shells' own wording of a line they could not parse; JSON layout and key order (entries hold
/// JSON with sorted keys on one line); the empty <c>"arguments": {}</c> that qmp-shell's <c>-v</c>
/// echoes and aqmp leaves out; and aqmp's events and its closing "The server quit" line.
/// </summary>
internal static partial class ShellTranscript
{
    /// <summary>The entry for a line the shell could not read as a command.</summary>
    public const string ParseError = "parse error";

    /// <summary>The entry for a Python traceback, after which qmp-shell printed nothing more.</summary>
    public const string Crash = "crash";

    private static readonly string[] QmpShellPrompts = ["(QEMU) ", "TRANS> "];
    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The QEMU version (<c>7.2.22</c>) in the shell's banner.</summary>
    public static string BannerVersion(string output) =>
        VersionInBanner().Match(output) is { Success: true } match ? match.Groups[1].Value : $"no version in: {output}";

    /// <summary>Entries of qmp-shell's output in QMP mode: <c>return JSON</c>, <c>error Class: desc</c>, <c>sent JSON</c>, <see cref="ParseError"/>.</summary>
    public static IReadOnlyList<string> OfQmpShell(string output) => Read(
        Lines(output).Skip(3).Select(WithoutPrompts),
        line => line.Length == 0 || line.StartsWith("command format:", StringComparison.Ordinal) ? string.Empty
            : line.StartsWith("Error while parsing command line:", StringComparison.Ordinal) ? ParseError
            : line.StartsWith("Traceback", StringComparison.Ordinal) ? Crash
            : null,
        node => node switch
        {
            JsonObject o when o.ContainsKey("return") => "return " + Canonical(o["return"]),
            JsonObject o when o["error"] is JsonObject error => $"error {error["class"]}: {error["desc"]}",
            JsonObject o when o.ContainsKey("execute") => "sent " + Sent(o),
            _ => "other " + Canonical(node),
        });

    /// <summary>Entries of <c>aqmp shell</c>'s output in QMP mode, as <see cref="OfQmpShell"/> reads qmp-shell's.</summary>
    public static IReadOnlyList<string> OfAqmp(string output) => Read(
        Lines(output),
        line => line.Length == 0 || line.StartsWith("Connected to QEMU ", StringComparison.Ordinal)
            || line.StartsWith("event: ", StringComparison.Ordinal) || line == "The server quit: session closed." ? string.Empty
            : QmpError().Match(line) is { Success: true } error ? $"error {error.Groups[1].Value}: {error.Groups[2].Value}"
            : line.StartsWith("error: ", StringComparison.Ordinal) ? ParseError
            : null,
        node => node is JsonObject o && o.ContainsKey("execute") ? "sent " + Sent(o) : "return " + Canonical(node));

    /// <summary>The lines of HMP text qmp-shell's <c>-H</c> printed, without banner, prompts and blank lines, up to a traceback.</summary>
    public static IReadOnlyList<string> HmpOfQmpShell(string output) =>
        Lines(output).Skip(3).TakeWhile(line => !line.StartsWith("Traceback", StringComparison.Ordinal))
            .Select(line => WithoutPrompts(line.TrimStart()).TrimEnd()).Where(line => line.Length > 0).ToList();

    /// <summary>The lines of HMP text <c>aqmp shell -H</c> printed, without banner, events and its closing line.</summary>
    public static IReadOnlyList<string> HmpOfAqmp(string output) =>
        Lines(output)
            .Where(line => line.Length > 0
                && !line.StartsWith("Connected to QEMU ", StringComparison.Ordinal)
                && !line.StartsWith("HMP mode: ", StringComparison.Ordinal)
                && !line.StartsWith("event: ", StringComparison.Ordinal)
                && line != "The server quit: session closed.")
            .ToList();

    /// <summary>JSON on one line with every object's keys sorted.</summary>
    public static string Canonical(JsonNode? node) => Sorted(node)?.ToJsonString(Relaxed) ?? "null";

    /// <summary>
    /// Reads <paramref name="lines"/> into entries: between replies, <paramref name="outside"/> gives
    /// a line's entry (empty: none; null: the line starts a JSON reply; <see cref="Crash"/> ends
    /// the reading); a reply's lines are gathered until they parse, and <paramref name="reply"/> names it.
    /// </summary>
    private static List<string> Read(IEnumerable<string> lines, Func<string, string?> outside, Func<JsonNode?, string> reply)
    {
        var entries = new List<string>();
        var json = string.Empty;
        foreach (var line in lines)
        {
            if (json.Length == 0 && outside(line) is { } entry)
            {
                if (entry.Length > 0)
                {
                    entries.Add(entry);
                }

                if (entry == Crash)
                {
                    break;
                }

                continue;
            }

            json += line + "\n";
            if (TryParse(json, out var node))
            {
                json = string.Empty;
                entries.Add(reply(node));
            }
        }

        if (json.Length > 0)
        {
            entries.Add("unparsed " + json);
        }

        return entries;
    }

    private static string Sent(JsonObject command)
    {
        var copy = (JsonObject)command.DeepClone();
        if (copy["arguments"] is JsonObject { Count: 0 })
        {
            copy.Remove("arguments");
        }

        return Canonical(copy);
    }

    private static JsonNode? Sorted(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Sorted(p.Value)))),
        JsonArray a => new JsonArray(a.Select(Sorted).ToArray()),
        _ => node?.DeepClone(),
    };

    private static bool TryParse(string text, out JsonNode? node)
    {
        try
        {
            node = JsonNode.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            node = null;
            return false;
        }
    }

    private static IEnumerable<string> Lines(string output) => output.Replace("\r", string.Empty, StringComparison.Ordinal).Split('\n');

    private static string WithoutPrompts(string line)
    {
        var stripped = true;
        while (stripped)
        {
            stripped = false;
            foreach (var prompt in QmpShellPrompts)
            {
                if (line.StartsWith(prompt, StringComparison.Ordinal))
                {
                    line = line[prompt.Length..].TrimStart();
                    stripped = true;
                }
            }
        }

        return line;
    }

    [GeneratedRegex(@"^error: ([A-Z][A-Za-z]+): (.*)$")]
    private static partial Regex QmpError();

    [GeneratedRegex(@"Connected to QEMU (\d+\.\d+\.\d+)")]
    private static partial Regex VersionInBanner();
}
