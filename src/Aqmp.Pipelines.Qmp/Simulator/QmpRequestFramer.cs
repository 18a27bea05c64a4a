using System.Buffers;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// Frames QMP on the server side: like <see cref="QmpFramer"/>, except that a line of well-formed
/// JSON that is not an acceptable QMP message does not end the session. It is decoded as the
/// error reply QEMU sends back for it (<see cref="QmpMessage.Refusal"/>:
/// <c>{"error": {"class": "GenericError", "desc": REASON}, "id": ID}</c>), which the session
/// tells from a client's own messages by <see cref="QmpMessage.IsRefusal"/>. A line that is not
/// JSON still raises <see cref="QmpParseException"/>.
/// </summary>
internal sealed class QmpRequestFramer(int maximumMessageLength) : LineFramer<QmpMessage>(maximumMessageLength)
{
    /// <inheritdoc />
    /// <exception cref="QmpParseException">The line is not well-formed JSON.</exception>
    protected override QmpMessage DecodeLine(in ReadOnlySequence<byte> line)
    {
        try
        {
            return QmpMessage.Parse(line);
        }
        catch (QmpParseException ex) when (ex.IsWellFormedJson)
        {
            return QmpMessage.Refusal(ex);
        }
    }

    /// <inheritdoc />
    protected override void EncodeLine(QmpMessage message, IBufferWriter<byte> output) => QmpFramer.Encode(message, output);
}
