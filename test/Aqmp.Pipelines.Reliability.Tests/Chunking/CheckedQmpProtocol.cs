using System.Text;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>
/// A session decoding with <see cref="QmpFramer"/> that checks every inbound message, in order,
/// against a regenerated <see cref="QmpMessageStream"/>: the whole JSON tree, and what
/// <see cref="QmpMessage"/>'s accessors report. A message that differs, or one more than
/// expected, ends the session with an <see cref="InvalidDataException"/> saying where.
/// </summary>
internal sealed class CheckedQmpProtocol(CountingQmpFramer framer, PipeProtocolOptions options, QmpMessageStream expected)
    : PipeProtocol<QmpMessage>(framer, options)
{
    /// <summary>How many messages were decoded from a line spanning two or more pipe segments.</summary>
    public int MultiSegmentMessages => framer.MultiSegmentMessages;

    /// <summary>How many messages arrived and matched.</summary>
    public int Received { get; private set; }

    /// <summary>How many of them were of each kind.</summary>
    public Dictionary<QmpMessageKind, int> ReceivedByKind { get; } = [];

    /// <inheritdoc />
    protected override ValueTask OnMessageAsync(QmpMessage message, MessageContext<QmpMessage> context, CancellationToken cancellationToken)
    {
        if (expected.Produced == expected.Count)
        {
            throw new InvalidDataException($"Message {Received} arrived, but only {expected.Count} were sent: {Clip(message.ToString())}");
        }

        var expectation = expected.Next();
        if (Diff(message, expectation) is { } difference)
        {
            throw new InvalidDataException(
                $"Message {expectation.Index} ({expectation.Kind}) differs: {difference}. Sent as {Clip(Encoding.UTF8.GetString(expected.Wire.Span))}");
        }

        Received++;
        ReceivedByKind[message.Kind] = ReceivedByKind.GetValueOrDefault(message.Kind) + 1;
        return ValueTask.CompletedTask;
    }

    private static string? Diff(QmpMessage message, QmpExpectation expectation)
    {
        if (message.Kind != expectation.Kind)
        {
            return $"kind {message.Kind}";
        }

        return JsonModel.Diff(message.Root, expectation.Root, "$")
            ?? Optional(message.Id, expectation.Id, "Id")
            ?? expectation.Kind switch
            {
                QmpMessageKind.Return => Optional(message.ReturnValue, expectation.ReturnValue, "ReturnValue"),
                QmpMessageKind.Error => message.ErrorClass != expectation.ErrorClass || message.ErrorDescription != expectation.ErrorDescription
                    ? $"ErrorClass {message.ErrorClass}, ErrorDescription {message.ErrorDescription}"
                    : null,
                _ => EventDiff(message, expectation),
            };
    }

    private static string? EventDiff(QmpMessage message, QmpExpectation expectation)
    {
        var parsed = message.ToEvent();
        if (parsed.Name != expectation.EventName || message.EventName != expectation.EventName)
        {
            return $"EventName {parsed.Name}";
        }

        return parsed.Timestamp != expectation.Timestamp
            ? $"Timestamp {parsed.Timestamp:O}, expected {expectation.Timestamp:O}"
            : Optional(parsed.Data, expectation.EventData, "Data");
    }

    private static string? Optional(JsonElement? actual, object? expected, string what) => (actual, expected) switch
    {
        (null, null) => null,
        ({ } element, { } model) => JsonModel.Diff(element, model, what),
        _ => $"{what} is {(actual is null ? "absent" : "present")}",
    };

    private static string Clip(string text) => text.Length <= 300 ? text : $"{text[..300]}…";
}
