using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Tests.Support;

namespace Aqmp.Pipelines.Tests.Session;

/// <summary>Records RunstateChanged events, thread-safely.</summary>
internal sealed class RunstateRecorder
{
    private readonly List<(Runstate Previous, Runstate Current)> _transitions = [];

    public RunstateRecorder(LineProtocol protocol)
    {
        protocol.RunstateChanged += (_, e) =>
        {
            lock (_transitions)
            {
                _transitions.Add((e.Previous, e.Current));
            }
        };
    }

    public IReadOnlyList<(Runstate Previous, Runstate Current)> Transitions
    {
        get
        {
            lock (_transitions)
            {
                return [.. _transitions];
            }
        }
    }

    /// <summary>The runstate entered at each transition, in order.</summary>
    public IReadOnlyList<Runstate> States => [.. Transitions.Select(t => t.Current)];
}
