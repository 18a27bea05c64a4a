using System.Text.Json;

namespace Aqmp.Pipelines.Benchmarks.Qmp;

/// <summary>Checks shared by the QMP benchmarks; each throws on a wrong result.</summary>
internal static class QmpVerify
{
    /// <summary>Throws unless <paramref name="status"/> is a <c>query-status</c> return value of a running machine.</summary>
    /// <param name="status">The <c>return</c> value.</param>
    public static void Running(JsonElement status)
    {
        if (status.ValueKind != JsonValueKind.Object
            || !status.TryGetProperty("status", out var name) || name.ValueKind != JsonValueKind.String || !name.ValueEquals("running")
            || !status.TryGetProperty("running", out var running) || running.ValueKind != JsonValueKind.True)
        {
            throw new InvalidOperationException($"Unexpected query-status reply: {status.GetRawText()}");
        }
    }
}

/// <summary>The data files copied next to the benchmark assembly from <c>benchmarks/data</c>.</summary>
internal static class QmpBenchmarkData
{
    /// <summary>The full path of QEMU 7.2's <c>query-qmp-schema</c> reply (one line, CRLF-terminated).</summary>
    public static string SchemaPath => Find("query-qmp-schema.json");

    /// <summary>
    /// Finds <c>data/<paramref name="name"/></c> next to the running assembly or in a parent directory
    /// (BenchmarkDotNet runs a generated project whose output lies below this project's).
    /// </summary>
    private static string Find(string name)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "data", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"data/{name} was found neither in {AppContext.BaseDirectory} nor above it.", name);
    }
}
