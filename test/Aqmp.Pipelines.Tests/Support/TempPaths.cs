namespace Aqmp.Pipelines.Tests.Support;

/// <summary>Short, unique Unix-domain socket paths (sun_path allows about 107 bytes).</summary>
internal static class TempPaths
{
    public static string NewSocketPath() => Path.Combine(Path.GetTempPath(), $"aqmp-{Guid.NewGuid():N}.sock");
}
