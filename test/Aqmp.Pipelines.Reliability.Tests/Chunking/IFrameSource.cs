using System.Buffers;

namespace Aqmp.Pipelines.Reliability.Tests.Chunking;

/// <summary>A finite, seeded sequence of frames, produced as wire bytes one frame at a time.</summary>
internal interface IFrameSource
{
    /// <summary>Appends the next frame's wire bytes (content and delimiter) to <paramref name="output"/>.</summary>
    /// <param name="output">Where the bytes go.</param>
    /// <returns><see langword="false"/> when every frame has been produced (nothing is appended).</returns>
    bool TryAppendNext(IBufferWriter<byte> output);
}
