namespace Aqmp.Pipelines.Session;

/// <summary>
/// Builds logger category names: the class's full name (generic arity and nesting markers
/// removed), plus <c>.{name}</c> for a named connection, as QEMU's aqmp's
/// <c>logger.getChild(name)</c>.
/// </summary>
internal static class LoggerCategory
{
    public static string For(Type type, string? name)
    {
        var typeName = (type.FullName ?? type.Name).Replace('+', '.');
        var genericMarker = typeName.IndexOf('`', StringComparison.Ordinal);
        if (genericMarker >= 0)
        {
            typeName = typeName[..genericMarker];
        }

        return string.IsNullOrEmpty(name) ? typeName : $"{typeName}.{name}";
    }
}
