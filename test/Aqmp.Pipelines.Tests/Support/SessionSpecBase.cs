using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>
/// Base of the Session specifications (Session/): owns the protocol objects a test creates
/// and disposes them after it, each disposal bounded, so that a hang fails the test.
/// </summary>
public abstract class SessionSpecBase
{
    private readonly List<IAsyncDisposable> _owned = [];

    [TearDown]
    public async Task DisposeOwnedAsync()
    {
        var owned = _owned.ToArray();
        _owned.Clear();
        for (var i = owned.Length - 1; i >= 0; i--)
        {
            await owned[i].DisposeAsync().Bounded();
        }
    }

    /// <summary>Disposes <paramref name="disposable"/> after the test, in reverse order of creation.</summary>
    private protected T Own<T>(T disposable)
        where T : IAsyncDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }
}
