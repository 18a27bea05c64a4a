namespace Aqmp.Pipelines.Cli;

/// <summary>A command line split into positional arguments and <c>--name value</c> options.</summary>
internal sealed class CliArguments
{
    private readonly List<string> _positional = [];
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);

    private CliArguments()
    {
    }

    /// <summary>Whether <c>--help</c> or <c>-h</c> was given.</summary>
    public bool Help { get; private set; }

    public IReadOnlyList<string> Positional => _positional;

    /// <summary>Splits <paramref name="args"/>; <paramref name="valueOptions"/> are the options that take a value.</summary>
    public static CliArguments Parse(IEnumerable<string> args, params string[] valueOptions)
    {
        var parsed = new CliArguments();
        using var e = args.GetEnumerator();
        while (e.MoveNext())
        {
            var arg = e.Current;
            if (arg is "--help" or "-h")
            {
                parsed.Help = true;
            }
            else if (arg.StartsWith("--", StringComparison.Ordinal) && arg.Length > 2)
            {
                var name = arg[2..];
                var equals = name.IndexOf('=', StringComparison.Ordinal);
                string? value = null;
                if (equals >= 0)
                {
                    value = name[(equals + 1)..];
                    name = name[..equals];
                }

                if (!valueOptions.Contains(name))
                {
                    throw new UsageException($"unknown option '--{name}'");
                }

                if (value is null)
                {
                    value = e.MoveNext() ? e.Current : throw new UsageException($"option '--{name}' needs a value");
                }

                if (!parsed._options.TryGetValue(name, out var values))
                {
                    parsed._options[name] = values = [];
                }

                values.Add(value);
            }
            else if (arg.StartsWith('-') && arg.Length > 1)
            {
                throw new UsageException($"unknown option '{arg}'");
            }
            else
            {
                parsed._positional.Add(arg);
            }
        }

        return parsed;
    }

    /// <summary>Every value given for <c>--name</c>.</summary>
    public IReadOnlyList<string> All(string name) => _options.TryGetValue(name, out var values) ? values : [];

    /// <summary>The value of <c>--name</c> as a positive integer, or null when absent.</summary>
    public int? PositiveInteger(string name)
    {
        var values = All(name);
        if (values.Count == 0)
        {
            return null;
        }

        return int.TryParse(values[^1], out var number) && number > 0
            ? number
            : throw new UsageException($"option '--{name}' needs a positive whole number, not '{values[^1]}'");
    }

    /// <summary>Fails unless there are between <paramref name="min"/> and <paramref name="max"/> positional arguments.</summary>
    public void ExpectPositional(int min, int max, string usage)
    {
        if (_positional.Count < min || _positional.Count > max)
        {
            throw new UsageException($"usage: {usage}");
        }
    }
}
