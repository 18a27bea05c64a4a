using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Aqmp.Pipelines.Cli.CommandLine;

/// <summary>
/// The kinds of option value the tool takes, each read by a parser that reports a wrong value as
/// one parse error naming the option and the value: <c>option '--count' needs a positive whole
/// number, not '0'</c>. When an option is given more than once, the last value counts.
/// </summary>
internal static class ValueOptions
{
    /// <summary>The longest time limit accepted, in seconds (a day).</summary>
    public const double MaxSeconds = 86_400;

    /// <summary>An option taking a number of seconds above 0 (fractions allowed, at most a day); null when absent.</summary>
    public static Option<TimeSpan?> Seconds(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "SECONDS",
        CustomParser = result =>
        {
            var text = LastValue(result);
            if (double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds) && seconds > 0 && seconds <= MaxSeconds)
            {
                return TimeSpan.FromSeconds(seconds);
            }

            result.AddError($"option '{name}' needs a number of seconds above 0 (at most {MaxSeconds.ToString(CultureInfo.InvariantCulture)}), not '{text}'");
            return null;
        },
    };

    /// <summary>An option taking a whole number above 0; null when absent.</summary>
    public static Option<int?> PositiveInteger(string name, string helpName, string description) => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = result =>
        {
            var text = LastValue(result);
            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number > 0)
            {
                return number;
            }

            result.AddError($"option '{name}' needs a positive whole number, not '{text}'");
            return null;
        },
    };

    /// <summary>An option taking any text (a file name, say); null when absent.</summary>
    public static Option<string?> Text(string name, string helpName, string description, params string[] aliases) => new(name, aliases)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = LastValue,
    };

    /// <summary>A flag: an option without a value.</summary>
    public static Option<bool> Flag(string name, string description, params string[] aliases) => new(name, aliases)
    {
        Description = description,
        Arity = ArgumentArity.Zero,
    };

    private static string LastValue(ArgumentResult result) => result.Tokens.Count == 0 ? string.Empty : result.Tokens[^1].Value;
}
