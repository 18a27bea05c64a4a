using System.Globalization;

namespace Aqmp.Pipelines.Cli.Shell;

/// <summary>Reads a shell address as qmp-shell does: <c>HOST:PORT</c> is TCP, anything else a Unix socket path.</summary>
internal static class ShellAddress
{
    /// <summary>
    /// Returns <paramref name="address"/> in the form the client connects to: <c>unix:PATH</c>,
    /// <c>HOST:PORT</c> and <c>[IPv6]:PORT</c> as they are, and any other text — a bare socket
    /// path such as <c>qmp.sock</c>, even without a '/' — as <c>unix:</c> followed by it.
    /// </summary>
    public static string Resolve(string address)
    {
        if (address.StartsWith("unix:", StringComparison.Ordinal))
        {
            return address;
        }

        var colon = address.LastIndexOf(':');
        var isTcp = colon > 0
            && !address.Contains('/', StringComparison.Ordinal)
            && ushort.TryParse(address.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out _);
        return isTcp ? address : "unix:" + address;
    }
}
