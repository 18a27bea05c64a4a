namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>The QEMU 7.2 texts shipped as resources of this assembly (folder <c>Simulator/Qemu</c>).</summary>
internal static class QemuResources
{
    /// <summary>Opens a resource.</summary>
    /// <param name="fileName">Its file name, e.g. <c>qmp-schema.json</c>.</param>
    /// <returns>Its bytes.</returns>
    /// <exception cref="InvalidOperationException">The assembly lacks it.</exception>
    public static Stream Open(string fileName)
    {
        var name = "Aqmp.Pipelines.Qmp.Simulator.Qemu." + fileName;
        return typeof(QemuResources).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"The resource {name} is missing from {typeof(QemuResources).Assembly.GetName().Name}.");
    }
}
