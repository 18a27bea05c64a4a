using DotNetty.Buffers;
using DotNetty.Codecs;
using DotNetty.Common;

namespace Aqmp.Pipelines.Benchmarks.BinaryFraming;

/// <summary>
/// DotNetty 0.7.6's frame decoders, for reference rows: each decoder's own per-frame method
/// (<c>Decode(context, buffer)</c>, which reads one frame off the buffer and returns it as a
/// retained slice, or null) called in a loop until it returns null, each frame released after its
/// length is counted. No channel pipeline around it (its cost would be on top). The input is the
/// same bytes as the framers read, wrapped without copying: one buffer, or a composite buffer of
/// one component per segment (what DotNetty's composite cumulator holds after several reads; its
/// default cumulator would copy them into one). Leak detection is off, as in production.
/// </summary>
internal static class DotNettyReference
{
    /// <summary>Wraps <paramref name="bytes"/>: one buffer, or one component per <paramref name="segmentSize"/> bytes when it is not 0.</summary>
    public static IByteBuffer Wrap(byte[] bytes, int segmentSize)
    {
        ResourceLeakDetector.Level = ResourceLeakDetector.DetectionLevel.Disabled;
        if (segmentSize == 0)
        {
            return Unpooled.WrappedBuffer(bytes);
        }

        var components = new List<IByteBuffer>();
        for (var offset = 0; offset < bytes.Length; offset += segmentSize)
        {
            components.Add(Unpooled.WrappedBuffer(bytes, offset, Math.Min(segmentSize, bytes.Length - offset)));
        }

        var composite = Unpooled.CompositeBuffer(components.Count);
        composite.AddComponents(true, components);
        return composite;
    }

    /// <summary>Decodes every frame of <paramref name="buffer"/> from its start; returns the frame count and payload bytes.</summary>
    public static (int Frames, long Bytes) DecodeAll(IByteBuffer buffer, Func<IByteBuffer, object?> decodeOne)
    {
        buffer.SetReaderIndex(0);
        var frames = 0;
        long bytes = 0;
        while (decodeOne(buffer) is IByteBuffer frame)
        {
            bytes += frame.ReadableBytes;
            frames++;
            frame.Release();
        }

        return (frames, bytes);
    }

    /// <summary><c>LengthFieldBasedFrameDecoder</c> with its per-frame method opened up.</summary>
    public sealed class LengthFieldDecoder(int maximumFrameLength, int lengthFieldLength)
        : LengthFieldBasedFrameDecoder(DotNetty.Buffers.ByteOrder.BigEndian, maximumFrameLength, 0, lengthFieldLength, 0, lengthFieldLength, failFast: true)
    {
        /// <summary>One frame, header stripped, or null when the buffer holds no whole frame.</summary>
        public object? DecodeOne(IByteBuffer input) => Decode(null!, input);
    }

    /// <summary><c>DelimiterBasedFrameDecoder</c> with its per-frame method opened up.</summary>
    public sealed class DelimiterDecoder(int maximumFrameLength, params byte[][] delimiters)
        : DelimiterBasedFrameDecoder(maximumFrameLength, true, true, delimiters.Select(d => Unpooled.WrappedBuffer(d)).ToArray())
    {
        /// <summary>One frame, delimiter stripped, or null when the buffer holds no whole frame.</summary>
        public object? DecodeOne(IByteBuffer input) => Decode(null!, input);
    }
}
