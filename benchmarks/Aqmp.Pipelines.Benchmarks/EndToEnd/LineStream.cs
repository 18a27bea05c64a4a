using System.Buffers;

namespace Aqmp.Pipelines.Benchmarks.EndToEnd;

/// <summary>The stream the one-way benchmarks move: LF-terminated lines of one length, and each line's payload.</summary>
internal static class LineStream
{
    /// <summary>Builds <paramref name="lines"/> lines of <paramref name="lineLength"/> bytes (LF included) in one buffer.</summary>
    public static byte[] BuildWire(int lines, int lineLength)
    {
        var wire = new byte[lines * lineLength];
        for (var i = 0; i < wire.Length; i++)
        {
            wire[i] = (i + 1) % lineLength == 0 ? (byte)'\n' : (byte)('a' + (i % 26));
        }

        return wire;
    }

    /// <summary>Each line's payload (its LF excluded), pointing into <paramref name="wire"/>.</summary>
    public static ReadOnlySequence<byte>[] Payloads(byte[] wire, int lineLength)
    {
        var payloads = new ReadOnlySequence<byte>[wire.Length / lineLength];
        for (var i = 0; i < payloads.Length; i++)
        {
            payloads[i] = new ReadOnlySequence<byte>(wire, i * lineLength, lineLength - 1);
        }

        return payloads;
    }
}
