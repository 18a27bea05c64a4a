namespace Aqmp.Pipelines.Cli.CommandLine;

/// <summary>The name a mistyped word most likely meant, for "did you mean ...?" hints.</summary>
internal static class Suggestion
{
    /// <summary>
    /// The candidate closest to <paramref name="typed"/> in edits (insertions, deletions,
    /// substitutions and swaps of two neighbouring characters), if it is within a third of the
    /// word's length (at least 1 edit, at most 3); the first such candidate on a tie; else null.
    /// </summary>
    public static string? Closest(string typed, IEnumerable<string> candidates)
    {
        var allowed = Math.Clamp(typed.Length / 3, 1, 3);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = Distance(typed, candidate);
            if (distance <= allowed && distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }

        return best;
    }

    /// <summary>The optimal-string-alignment distance between two words.</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
