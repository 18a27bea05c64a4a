using System.Net.Sockets;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Testing;

/// <summary>A Unix socket file nobody listens on, as a server that was killed leaves behind.</summary>
internal static class StaleSocketFile
{
    /// <summary>
    /// Leaves a socket file at <paramref name="path"/>: a listener's file moved there outlives the
    /// listener (which removes only the file it created, where it created it).
    /// </summary>
    public static async Task LeaveAtAsync(string path)
    {
        var elsewhere = path + ".listener";
        using (await SocketListener.BindAsync(new UnixDomainSocketEndPoint(elsewhere)).AsTask().WaitAsync(TimeSpan.FromSeconds(10)))
        {
            File.Move(elsewhere, path);
        }

        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"No stale socket file was left at '{path}'.");
        }
    }
}
