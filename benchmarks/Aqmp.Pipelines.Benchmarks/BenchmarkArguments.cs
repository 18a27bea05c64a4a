using System.Globalization;

namespace Aqmp.Pipelines.Benchmarks;

/// <summary>
/// The command-line arguments of the plain-loop modes (<see cref="BenchmarkLoop"/>,
/// <see cref="BenchmarkInterleave"/>) after the case: <c>--name=number</c> options and
/// <c>Name=Value</c> benchmark parameters.
/// </summary>
internal static class BenchmarkArguments
{
    /// <summary>
    /// Sets each <c>Name=Value</c> argument on <paramref name="instance"/>'s parameter property of
    /// that name, and reads each <c>--name=number</c> argument into <paramref name="options"/>,
    /// whose keys (say <c>--seconds</c>) are the options allowed and whose values are their defaults.
    /// </summary>
    /// <returns>The <c>Name=Value</c> arguments, in order.</returns>
    /// <exception cref="ArgumentException">An argument is neither, or names no parameter or option.</exception>
    public static List<string> Apply(object instance, IEnumerable<string> arguments, Dictionary<string, double> options)
    {
        var type = instance.GetType();
        var parameters = new List<string>();
        foreach (var argument in arguments)
        {
            var (name, value) = argument.Split('=', 2) is [var n, var v] ? (n, v) : throw new ArgumentException($"expected Name=Value or --option=N, got {argument}");
            if (name.StartsWith("--", StringComparison.Ordinal))
            {
                options[name] = options.ContainsKey(name) ? double.Parse(value, CultureInfo.InvariantCulture) : throw new ArgumentException($"no option {name}");
                continue;
            }

            var property = type.GetProperty(name) ?? throw new ArgumentException($"{type.Name} has no parameter {name}");
            property.SetValue(instance, property.PropertyType.IsEnum
                ? Enum.Parse(property.PropertyType, value)
                : Convert.ChangeType(value, property.PropertyType, CultureInfo.InvariantCulture));
            parameters.Add(argument);
        }

        return parameters;
    }
}
