namespace Aqmp.Pipelines.Session;

/// <summary>Which part of a session's own machinery an async flow belongs to.</summary>
internal enum SessionFlowRole
{
    /// <summary><c>EstablishSessionAsync</c>, and whatever it awaits.</summary>
    Handshake,

    /// <summary>The read loop: <c>OnInbound</c>, <c>OnMessageAsync</c>, and work they start.</summary>
    ReadLoop,

    /// <summary>The teardown: <c>OnSessionEndedAsync</c>, and work it starts.</summary>
    Teardown,
}

/// <summary>
/// Marks async flows as belonging to one session's handshake, read loop or teardown, so that a
/// call made from inside them (a send during the handshake, a disconnect from a hook) can be told
/// from the same call made by the application, instead of deadlocking on itself.
/// </summary>
internal static class SessionFlow
{
    private static readonly AsyncLocal<Marker?> Current = new();

    /// <summary>Marks the current flow (and flows it starts) as <paramref name="role"/> of <paramref name="owner"/>.</summary>
    public static void Enter(object owner, SessionFlowRole role) => Current.Value = new Marker(owner, role);

    /// <summary>Marks the current flow as none of a session's own.</summary>
    public static void Clear() => Current.Value = null;

    /// <summary>Whether the current flow is <paramref name="role"/> of <paramref name="owner"/>.</summary>
    public static bool Is(object owner, SessionFlowRole role) => Current.Value is { } marker && ReferenceEquals(marker.Owner, owner) && marker.Role == role;

    private sealed record Marker(object Owner, SessionFlowRole Role);
}
