using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Aqmp.Pipelines.Transports;

/// <summary>
/// Parses the address strings accepted wherever an address is given as text.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>unix:/run/qemu.sock</c>, or any text containing <c>/</c> (<c>/run/qemu.sock</c>, <c>./qmp.sock</c>): a Unix-domain socket path.</item>
/// <item><c>127.0.0.1:4444</c>: an IPv4 address and port.</item>
/// <item><c>[::1]:4444</c>: an IPv6 address (in brackets) and port.</item>
/// <item><c>localhost:4444</c>: a host name and port, resolved when connecting.</item>
/// </list>
/// </remarks>
public static class AddressParser
{
    private const string UnixPrefix = "unix:";

    /// <summary>Parses <paramref name="address"/> into an endpoint.</summary>
    /// <param name="address">The address text.</param>
    /// <returns>A <see cref="UnixDomainSocketEndPoint"/>, <see cref="IPEndPoint"/> or <see cref="DnsEndPoint"/>.</returns>
    /// <exception cref="FormatException">The text is none of the accepted forms; the message says why.</exception>
    public static EndPoint Parse(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.StartsWith(UnixPrefix, StringComparison.Ordinal))
        {
            var path = address[UnixPrefix.Length..];
            return path.Length == 0
                ? throw new FormatException($"Address '{address}' has an empty Unix socket path.")
                : UnixEndPoint(address, path);
        }

        if (address.Contains('/', StringComparison.Ordinal))
        {
            return UnixEndPoint(address, address);
        }

        var colon = address.LastIndexOf(':');
        if (colon <= 0)
        {
            throw new FormatException($"Address '{address}' is neither 'unix:PATH', a path containing '/', 'HOST:PORT' nor '[IPv6]:PORT'.");
        }

        var host = address[..colon];
        var port = ParsePort(address, address[(colon + 1)..]);
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            var literal = host[1..^1];
            return IPAddress.TryParse(literal, out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6
                ? new IPEndPoint(v6, port)
                : throw new FormatException($"Address '{address}' has an invalid IPv6 literal '{literal}'.");
        }

        if (host.Contains(':', StringComparison.Ordinal))
        {
            throw new FormatException($"Address '{address}': write an IPv6 address in brackets, as '[{host}]:{port}'.");
        }

        return IPAddress.TryParse(host, out var ip) ? new IPEndPoint(ip, port) : new DnsEndPoint(host, port);
    }

    /// <summary>Formats an endpoint the way <see cref="Parse"/> reads it back.</summary>
    /// <param name="endPoint">The endpoint.</param>
    /// <returns>The address text.</returns>
    public static string Format(EndPoint endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint unix => UnixPrefix + unix,
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } v6 => $"[{v6.Address}]:{v6.Port}",
        IPEndPoint ip => $"{ip.Address}:{ip.Port}",
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        _ => endPoint.ToString() ?? endPoint.GetType().Name,
    };

    private static UnixDomainSocketEndPoint UnixEndPoint(string address, string path)
    {
        try
        {
            return new UnixDomainSocketEndPoint(path);
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw new FormatException($"Address '{address}': the Unix socket path is longer than the system allows.", ex);
        }
    }

    private static int ParsePort(string address, string text)
    {
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port <= IPEndPoint.MaxPort)
        {
            return port;
        }

        throw new FormatException($"Address '{address}' has an invalid port '{text}' (expected 0 to {IPEndPoint.MaxPort}).");
    }
}
