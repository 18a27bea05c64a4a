using System.Net.Sockets;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// Fresh Unix-domain socket paths for a test fixture, remembered so that a <c>[TearDown]</c> can
/// delete whatever socket files are left (a listener that closes cleanly removes its own).
/// </summary>
internal sealed class SocketFiles
{
    private readonly List<string> _paths = [];

    public string NewPath()
    {
        var path = TempPaths.NewSocketPath();
        _paths.Add(path);
        return path;
    }

    public UnixDomainSocketEndPoint NewEndPoint() => new(NewPath());

    public void DeleteAll()
    {
        foreach (var path in _paths)
        {
            File.Delete(path);
        }

        _paths.Clear();
    }
}
