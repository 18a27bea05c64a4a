namespace Aqmp.Pipelines.Session;

/// <summary>
/// The session an <see cref="OutboundWriter{TMessage}"/> writes for, as the writer calls it: one
/// reference per writer instead of a delegate per hook.
/// </summary>
/// <typeparam name="TMessage">The protocol's message type.</typeparam>
internal interface IOutboundOwner<TMessage>
{
    /// <summary>Applies the session's outbound filter to <paramref name="message"/> as it is framed.</summary>
    /// <param name="message">The message.</param>
    /// <returns>The message to frame.</returns>
    TMessage FilterOutbound(TMessage message);

    /// <summary>Ends the session of <paramref name="outbound"/> with <paramref name="error"/>. Called outside the writer's lock.</summary>
    /// <param name="outbound">The writer that failed.</param>
    /// <param name="error">Why.</param>
    void OutboundFailed(OutboundWriter<TMessage> outbound, Exception error);
}
