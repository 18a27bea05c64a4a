using System.Buffers;
using System.Text.Json;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// Frames the simulator's input as QEMU 7.2's monitor reads it: a stream of JSON values, each
/// acted on as soon as its last byte arrives, with no separator needed between them; and writes
/// its output as QEMU does, spaced JSON ending in CRLF (see <see cref="QemuJsonWriter"/>).
/// </summary>
/// <remarks>
/// <para>
/// Input that is not a command does not end the session: each value or error QEMU would answer is
/// decoded as that answer, a refusal (<see cref="QmpMessage.IsRefusal"/>) the session sends back:
/// a stray byte ("JSON parse error, stray '…'", after which bytes are skipped up to the next
/// structural byte, control byte, <c>FE</c> or <c>FF</c>), a value that does not parse ("JSON parse
/// error, …"), QEMU's limits (1024 open brackets, 2 Mi tokens, 64 MiB of tokens), a value that is
/// not an object or not a command ("QMP input …", with the request's id). QEMU's lexer, streamer
/// and parser are <see cref="QemuJsonStreamer"/> and <see cref="QemuJsonParser"/>.
/// </para>
/// <para>
/// Values are found first by the core <see cref="JsonStreamFramer"/> (which resumes a long value
/// where it stopped), then scanned by QEMU's rules, which may end the value sooner. Where the two
/// disagree (a byte that cannot start a value, a single-quoted string holding a bracket or a
/// double quote, a scalar at top level) the input is scanned by QEMU's rules alone. A value that
/// is still unfinished beyond <c>maximumMessageLength</c> raises <see cref="FrameTooLargeException"/>
/// and ends the session. An instance serves one session at a time.
/// </para>
/// </remarks>
internal sealed class QemuInputFramer : IMessageFramer<QmpMessage>
{
    /// <summary>How much unfinished input is rescanned by QEMU's rules on each read when the core framer still waits.</summary>
    private const int EagerScanLimit = 64 * 1024;

    private static readonly byte[] LineEnd = "\r\n"u8.ToArray();

    private readonly JsonStreamFramer _values;
    private readonly int _maximumMessageLength;
    private bool _recovering;

    /// <summary>Creates the framer.</summary>
    /// <param name="maximumMessageLength">The longest value accepted, in bytes.</param>
    public QemuInputFramer(int maximumMessageLength)
    {
        _maximumMessageLength = maximumMessageLength;
        _values = new JsonStreamFramer(maximumMessageLength, maximumDepth: int.MaxValue - 1, separator: "");
    }

    /// <summary>Whether <c>exec-oob</c> is accepted as a command member: once the client has enabled <c>oob</c>.</summary>
    public bool AllowOutOfBand { get; set; }

    /// <inheritdoc />
    public long? MaximumFrameLength => _values.MaximumFrameLength;

    /// <inheritdoc />
    public void Reset()
    {
        _values.Reset();
        _recovering = false;
        AllowOutOfBand = false;
    }

    /// <inheritdoc />
    /// <exception cref="FrameTooLargeException">An unfinished value is longer than the limit.</exception>
    public bool TryReadMessage(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out QmpMessage message)
    {
        if (!_recovering)
        {
            var valueEnd = consumed;
            var valueExamined = examined;
            bool found;
            try
            {
                found = _values.TryReadMessage(input, ref valueEnd, ref valueExamined, out _);
            }
            catch (UnexpectedByteException)
            {
                found = false;
                valueExamined = input.Start;
            }
            catch (FrameNestingException)
            {
                found = false;
                valueExamined = input.Start;
            }

            if (found)
            {
                var scan = QemuJsonStreamer.Scan(input.Slice(input.Start, valueEnd), recovering: false);
                if (scan.Outcome != QemuJsonScanOutcome.NeedMore)
                {
                    return Emit(input, scan, ref consumed, ref examined, out message);
                }
            }
            else if (valueExamined.Equals(input.End) && input.Length > EagerScanLimit && input.Length <= QemuJsonStreamer.MaximumTokenSize)
            {
                // The core framer waits for the rest of a long value: so does QEMU, unless the
                // value broke its rules, which the full scan finds once the core framer has it,
                // or, past QEMU's limit on a value's tokens, as soon as they exceed it.
                examined = valueExamined;
                message = default!;
                return false;
            }
        }

        var full = QemuJsonStreamer.Scan(input, _recovering);
        if (full.Outcome != QemuJsonScanOutcome.NeedMore)
        {
            return Emit(input, full, ref consumed, ref examined, out message);
        }

        if (full.Idle)
        {
            consumed = input.End;
            _recovering = full.Recovering;
            _values.Reset();
        }
        else if (input.Length > 2L * _maximumMessageLength)
        {
            throw new FrameTooLargeException(_maximumMessageLength, input.Length);
        }

        examined = input.End;
        message = default!;
        return false;
    }

    /// <inheritdoc />
    /// <remarks>QEMU drops what is left unfinished when the client goes: nothing is delivered.</remarks>
    public bool TryReadFinalMessage(in ReadOnlySequence<byte> remainder, out QmpMessage message)
    {
        message = default!;
        return false;
    }

    /// <inheritdoc />
    public void WriteMessage(QmpMessage message, IBufferWriter<byte> output)
    {
        QemuJsonWriter.Write(message.Root, output);
        output.Write(LineEnd);
    }

    private bool Emit(in ReadOnlySequence<byte> input, QemuJsonScan scan, ref SequencePosition consumed, ref SequencePosition examined, out QmpMessage message)
    {
        consumed = input.GetPosition(scan.End);
        examined = consumed;
        _recovering = scan.Recovering;
        _values.Reset();
        message = scan.Outcome == QemuJsonScanOutcome.Error ? QmpMessage.Refusal(scan.Error!, null) : Decode(scan.Tokens!);
        return true;
    }

    private QmpMessage Decode(List<QemuJsonToken> tokens)
    {
        if (QemuJsonParser.Parse(tokens, out var value) is { } error)
        {
            return QmpMessage.Refusal(error, null);
        }

        if (QmpRequestCheck.Refusal(value, AllowOutOfBand) is { } refusal)
        {
            JsonElement? id = value.ValueKind == JsonValueKind.Object && value.TryGetProperty("id", out var member) ? member : null;
            return QmpMessage.Refusal(refusal, id);
        }

        try
        {
            return QmpMessage.FromJson(value);
        }
        catch (QmpParseException ex) when (ex.IsWellFormedJson)
        {
            return QmpMessage.Refusal(ex);
        }
    }
}
