namespace Aqmp.Pipelines.Cli;

/// <summary>A command line split into positional arguments and <c>--name value</c> options.</summary>
internal sealed class CliArguments
{
    private readonly List<string> _positional = [];
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    private CliArguments()
    {
    }

    /// <summary>Whether <c>--help</c> or <c>-h</c> was given.</summary>
    public bool Help { get; private set; }

    public IReadOnlyList<string> Positional => _positional;

    /// <summary>Splits <paramref name="args"/>; <paramref name="valueOptions"/> are the options that take a value.</summary>
    public static CliArguments Parse(IEnumerable<string> args, params string[] valueOptions) => Parse(args, valueOptions, [], new Dictionary<char, string>());

    /// <summary>
    /// Splits <paramref name="args"/>: <paramref name="valueOptions"/> take a value, <paramref name="flags"/>
    /// take none, and <paramref name="shortNames"/> maps one-letter options (<c>-p</c>) to their long
    /// names; one-letter flags may be grouped (<c>-pv</c>), and a one-letter value option takes the
    /// rest of its word or the next argument (<c>-lFILE</c>, <c>-l FILE</c>).
    /// </summary>
    /// <exception cref="UsageException">An option is unknown or lacks its value.</exception>
    public static CliArguments Parse(IEnumerable<string> args, string[] valueOptions, string[] flags, IReadOnlyDictionary<char, string> shortNames)
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

                if (flags.Contains(name) && value is null)
                {
                    parsed._flags.Add(name);
                    continue;
                }

                if (!valueOptions.Contains(name))
                {
                    throw new UsageException($"unknown option '--{name}'");
                }

                if (value is null)
                {
                    value = e.MoveNext() ? e.Current : throw new UsageException($"option '--{name}' needs a value");
                }

                parsed.Add(name, value);
            }
            else if (arg.StartsWith('-') && arg.Length > 1)
            {
                for (var i = 1; i < arg.Length; i++)
                {
                    if (!shortNames.TryGetValue(arg[i], out var name))
                    {
                        throw new UsageException($"unknown option '-{arg[i]}'");
                    }

                    if (flags.Contains(name))
                    {
                        parsed._flags.Add(name);
                        continue;
                    }

                    var value = i + 1 < arg.Length ? arg[(i + 1)..] : e.MoveNext() ? e.Current : throw new UsageException($"option '-{arg[i]}' needs a value");
                    parsed.Add(name, value);
                    break;
                }
            }
            else
            {
                parsed._positional.Add(arg);
            }
        }

        return parsed;
    }

    /// <summary>Whether the flag <c>--name</c> (or its one-letter form) was given.</summary>
    public bool Flag(string name) => _flags.Contains(name);

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

    private void Add(string name, string value)
    {
        if (!_options.TryGetValue(name, out var values))
        {
            _options[name] = values = [];
        }

        values.Add(value);
    }

    /// <summary>The value of <c>--name</c> as a positive number of seconds (fractions allowed), or null when absent.</summary>
    /// <exception cref="UsageException">The value is not a positive number, or is more than a day.</exception>
    public TimeSpan? PositiveSeconds(string name)
    {
        var values = All(name);
        if (values.Count == 0)
        {
            return null;
        }

        return double.TryParse(values[^1], System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0 && seconds <= 86_400
            ? TimeSpan.FromSeconds(seconds)
            : throw new UsageException($"option '--{name}' needs a number of seconds above 0 (at most 86400), not '{values[^1]}'");
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
