using System.Text.Json;

namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// What QEMU 7.2's monitor checks of a parsed request before it looks the command up
/// (<c>qmp_dispatch</c>, <c>qmp_dispatch_check_obj</c>), with its error texts.
/// </summary>
internal static class QmpRequestCheck
{
    /// <summary>Checks a request member by member, in the order QEMU lists them.</summary>
    /// <param name="request">The parsed value.</param>
    /// <param name="allowOutOfBand">Whether <c>exec-oob</c> is accepted (the client enabled <c>oob</c>).</param>
    /// <returns>Why QEMU refuses it, or null when it is a command.</returns>
    public static string? Refusal(JsonElement request, bool allowOutOfBand)
    {
        if (request.ValueKind != JsonValueKind.Object)
        {
            return "QMP input must be a JSON object";
        }

        string? executeMember = null;
        foreach (var member in request.EnumerateObject())
        {
            if (member.Name == "execute" || (member.Name == "exec-oob" && allowOutOfBand))
            {
                if (member.Value.ValueKind != JsonValueKind.String)
                {
                    return $"QMP input member '{member.Name}' must be a string";
                }

                if (executeMember is not null)
                {
                    return $"QMP input member '{member.Name}' is unexpected";
                }

                executeMember = member.Name;
            }
            else if (member.Name == "arguments")
            {
                if (member.Value.ValueKind != JsonValueKind.Object)
                {
                    return "QMP input member 'arguments' must be an object";
                }
            }
            else if (member.Name != "id")
            {
                return $"QMP input member '{member.Name}' is unexpected";
            }
        }

        return executeMember is null ? "QMP input lacks member 'execute'" : null;
    }
}
