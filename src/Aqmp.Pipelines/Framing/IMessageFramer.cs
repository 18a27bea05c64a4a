using System.Buffers;

namespace Aqmp.Pipelines.Framing;

/// <summary>
/// Turns a byte stream into messages and messages into bytes: the pluggable framing of a session.
/// </summary>
/// <typeparam name="TMessage">The message type of the protocol.</typeparam>
/// <remarks>
/// <para>
/// The session owns the <see cref="System.IO.Pipelines.PipeReader"/> and calls
/// <see cref="TryReadMessage"/> repeatedly on what is buffered, advancing the reader to the
/// positions the framer reports. A framer that keeps no per-stream state (the line framers keep
/// none) may serve many sessions at once. A framer that does (say, a scanner that resumes inside
/// a long partial frame where it stopped) serves one session at a time: the session calls
/// <see cref="Reset"/> before it reads the first byte of each new connection, and calls the
/// framer's read methods from one loop at a time.
/// </para>
/// <para>
/// <b>Lifetime of pipe memory.</b> The <c>input</c> sequence points into the pipe's buffers,
/// which the session recycles as soon as it advances past them. A message returned by
/// <see cref="TryReadMessage"/> may point into that memory (a <see cref="ReadOnlySequence{T}"/>
/// slice, a <see cref="ReadOnlyMemory{T}"/>, a ref struct over it): such a message is valid only
/// until the session's <c>OnMessageAsync</c> for it has completed, because the session advances
/// the reader only after every message parsed from one read has been handled. Copy whatever must
/// outlive that call. Messages that own their data (strings, parsed objects) have no such limit.
/// </para>
/// </remarks>
public interface IMessageFramer<TMessage>
{
    /// <summary>
    /// The largest inbound frame, in bytes including its delimiter, this framer accepts; or
    /// <see langword="null"/> when it does not know. Informational (tools and diagnostics read
    /// it): the session does not size its buffers from it. A framer enforces its own limit by
    /// throwing <see cref="FrameTooLargeException"/> as soon as it knows a frame is over it: what
    /// its caller holds of a frame that never ends is then that limit (and a byte or two of a
    /// delimiter) plus one read.
    /// </summary>
    long? MaximumFrameLength => null;

    /// <summary>
    /// Forgets any per-stream state: called by the session before it reads the first byte of a
    /// new connection (before its handshake). The default does nothing.
    /// </summary>
    void Reset()
    {
    }

    /// <summary>
    /// Tries to parse one message from the start of <paramref name="input"/>.
    /// </summary>
    /// <param name="input">The unconsumed bytes buffered so far, starting at a frame boundary.</param>
    /// <param name="consumed">
    /// On success, set to the position just past the frame. Left alone on failure.
    /// </param>
    /// <param name="examined">
    /// On entry, <paramref name="input"/>'s start, or, while a frame is still incomplete, the
    /// position an earlier call on these same buffered bytes set when it returned
    /// <see langword="false"/> (the session carries it from one read to the next, so a framer may
    /// resume its search there instead of rescanning a long partial frame on every read; a framer
    /// must also accept <paramref name="input"/>'s start). Set to the position up to which the
    /// framer looked. On failure it must be <paramref name="input"/>'s end (or the framer's own
    /// bound), so that the session waits for more bytes instead of calling again on the same ones.
    /// </param>
    /// <param name="message">The parsed message, when the method returns <see langword="true"/>.</param>
    /// <returns><see langword="true"/> when a whole frame was parsed; <see langword="false"/> when more bytes are needed.</returns>
    /// <exception cref="FrameTooLargeException">The frame at the start of <paramref name="input"/> is over the limit.</exception>
    /// <exception cref="ProtocolException">The bytes are not a valid frame of this protocol.</exception>
    bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out TMessage message);

    /// <summary>
    /// Called once when the peer has ended the stream while <paramref name="remainder"/>, which
    /// holds no complete frame, is still buffered. Either return a final message made of the
    /// unterminated bytes (for protocols whose last frame may end with the stream) or throw.
    /// </summary>
    /// <param name="remainder">The non-empty bytes left after the last complete frame.</param>
    /// <param name="message">The final message, when the method returns <see langword="true"/>.</param>
    /// <returns><see langword="true"/> to deliver <paramref name="message"/> before the session ends.</returns>
    /// <exception cref="IncompleteFrameException">The default: a partial frame is an error.</exception>
    bool TryReadFinalMessage(in ReadOnlySequence<byte> remainder, out TMessage message)
        => throw new IncompleteFrameException(remainder.Length);

    /// <summary>
    /// Writes <paramref name="message"/>, framed, into <paramref name="output"/>.
    /// </summary>
    /// <param name="message">The message to write.</param>
    /// <param name="output">The session's outbound buffer; the session flushes it once per batch.</param>
    void WriteMessage(TMessage message, IBufferWriter<byte> output);
}
