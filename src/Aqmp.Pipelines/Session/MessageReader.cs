using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.IO.Pipelines;
using System.Runtime.ExceptionServices;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Session;

/// <summary>
/// Reads a connection's messages through its framer, for the handshake and then the read loop
/// (the same instance, so a read the handshake did not finish is continued, not handed back): the
/// one owner of the input's <see cref="PipeReader.AdvanceTo(SequencePosition, SequencePosition)"/>.
/// It holds one read at a time and takes messages from it without waiting; only when none is left
/// does it hand the read back (past what was consumed, examined as far as the framer looked) and
/// wait for more. Not thread-safe: one flow reads at a time.
/// </summary>
/// <remarks>
/// The framer is handed, on every call for the same partial frame, the position where it stopped
/// looking last time, so that it never searches a long partial frame twice; once a frame is
/// consumed, or the read is handed back with nothing left, that position is forgotten (the pipe may
/// recycle the memory it points into).
/// </remarks>
/// <typeparam name="TMessage">The protocol's message type.</typeparam>
internal sealed class MessageReader<TMessage>(TransportConnection connection, IMessageFramer<TMessage> framer)
{
    private readonly PipeReader _input = connection.Pipe.Input;
    private ReadOnlySequence<byte> _buffer;   // the held read, from the first unconsumed byte
    private SequencePosition _examined;       // where the framer stopped looking in _buffer's partial frame; default: nowhere yet
    private bool _held;
    private bool _completed;
    private bool _failed;
    private long _bufferOffset;               // the position in the inbound stream of _buffer.Start, when tracked
    private readonly bool _tracksPositions = connection is UnixDescriptorConnection;

    /// <summary>On a connection that passes descriptors, the inbound stream position of the last message's first byte (leading bytes the framer skipped included).</summary>
    public long MessageStart { get; private set; }

    /// <summary>On a connection that passes descriptors, the inbound stream position just past the last message.</summary>
    public long MessageEnd { get; private set; }

    /// <summary>Whether the held read is the last: the peer ended the stream (or the connection failed) after it.</summary>
    public bool IsCompleted => _held && _completed;

    /// <summary>Takes the next complete message from the held read, without waiting.</summary>
    /// <param name="message">The message; it may point into the held read, valid until the read is handed back.</param>
    /// <returns>Whether a complete message was buffered.</returns>
    /// <exception cref="ProtocolException">The framer refused the bytes; the caller then hands the read back with <see cref="Release"/>'s <c>failed</c>.</exception>
    public bool TryRead([MaybeNullWhen(false)] out TMessage message)
    {
        message = default;
        if (!_held)
        {
            return false;
        }

        var consumed = _buffer.Start;
        var examined = ExaminedOr(_buffer.Start);
        if (framer.TryReadMessage(_buffer, ref consumed, ref examined, out message))
        {
            if (_tracksPositions)
            {
                Track(_buffer.Slice(_buffer.Start, consumed).Length);
            }

            _buffer = _buffer.Slice(consumed);
            _examined = default;
            return true;
        }

        _examined = examined;
        return false;
    }

    /// <summary>
    /// At the end of the stream (<see cref="IsCompleted"/>, no complete message left): the final
    /// message the framer makes of the unterminated rest, if any. Not offered when the connection
    /// failed (a reset): what is left was cut short, and the failure is the end.
    /// </summary>
    /// <param name="message">The final message.</param>
    /// <returns>Whether there was one.</returns>
    /// <exception cref="IncompleteFrameException">The rest is a partial frame (the framer's default).</exception>
    public bool TryReadFinal([MaybeNullWhen(false)] out TMessage message)
    {
        message = default;
        if (!IsCompleted || _buffer.IsEmpty || connection.InputError is not null)
        {
            return false;
        }

        if (!framer.TryReadFinalMessage(_buffer, out message))
        {
            return false;
        }

        if (_tracksPositions)
        {
            Track(_buffer.Length);
        }

        _buffer = _buffer.Slice(_buffer.End);
        _examined = default;
        return true;
    }

    /// <summary>Drops everything held without delivering it (the session is ending on purpose).</summary>
    public void DiscardHeld()
    {
        if (_held)
        {
            _bufferOffset += _tracksPositions ? _buffer.Length : 0;
            _buffer = _buffer.Slice(_buffer.End);
            _examined = default;
        }
    }

    /// <summary>Hands the held read back and waits for more bytes.</summary>
    /// <param name="cancellationToken">Stops waiting (<see cref="OperationCanceledException"/>).</param>
    /// <returns>False when the wait was cancelled with <see cref="PipeReader.CancelPendingRead"/> (nothing is held then).</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> ReadAsync(CancellationToken cancellationToken = default)
        => Hold(await ReleaseAndReadAsync(cancellationToken).ConfigureAwait(false));

    /// <summary>
    /// <see cref="ReadAsync"/> in two halves, for a loop that waits on the input's own read (holding
    /// no state machine of this reader while it waits): hands the held read back and starts the
    /// next read; pass its result to <see cref="Hold"/>.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting (<see cref="OperationCanceledException"/>).</param>
    /// <returns>The input's read.</returns>
    public ValueTask<ReadResult> ReleaseAndReadAsync(CancellationToken cancellationToken = default)
    {
        Release();
        return _input.ReadAsync(cancellationToken);
    }

    /// <summary>Holds the result of the read <see cref="ReleaseAndReadAsync"/> started.</summary>
    /// <param name="result">The read's result.</param>
    /// <returns>False when the read was cancelled with <see cref="PipeReader.CancelPendingRead"/> (nothing is held then).</returns>
    public bool Hold(ReadResult result)
    {
        if (result.IsCanceled)
        {
            // Handed back as examined as far as before, or a pipe would count those bytes anew.
            _input.AdvanceTo(result.Buffer.Start, ExaminedOr(result.Buffer.Start));
            return false;
        }

        _buffer = result.Buffer;
        _completed = result.IsCompleted;
        _held = true;
        return true;
    }

    /// <summary>
    /// Hands the held read back, if any: past what was consumed, examined as far as the framer
    /// looked (to its end once the reader or its caller failed, so that a pipe-backed transport
    /// does not count the buffered bytes as new while the session ends). Idempotent.
    /// </summary>
    /// <param name="failed">The caller is failing (the framer or a handler threw): hand the read back fully examined, now and on every later call.</param>
    public void Release(bool failed = false)
    {
        if (!_held)
        {
            return;
        }

        _held = false;
        _failed |= failed;
        // Not looked at yet (the handshake stopped at a frame boundary): the next read shows it again.
        _input.AdvanceTo(_buffer.Start, _failed ? _buffer.End : ExaminedOr(_buffer.Start));
        if (_buffer.IsEmpty || _failed)
        {
            _examined = default;
        }
    }

    /// <summary>Records the message of <paramref name="length"/> bytes just taken from the front of the held read.</summary>
    private void Track(long length)
    {
        MessageStart = _bufferOffset;
        _bufferOffset += length;
        MessageEnd = _bufferOffset;
    }

    /// <summary>Where the framer stopped looking in the partial frame, or <paramref name="start"/> when it has not looked yet.</summary>
    private SequencePosition ExaminedOr(SequencePosition start) => _examined.GetObject() is null ? start : _examined;

    /// <summary>The connection this reader reads.</summary>
    public TransportConnection Connection => connection;

    /// <summary>Raises why the input ended: the failure the transport deferred (a reset), or <see cref="EndOfStreamException"/>.</summary>
    [DoesNotReturn]
    public void ThrowPeerGone()
    {
        if (connection.InputError is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }

        throw new EndOfStreamException("The peer closed the connection.");
    }
}
