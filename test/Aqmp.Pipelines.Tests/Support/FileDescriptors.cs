using System.IO.Pipes;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>Counts this process's open file descriptors, and makes pipes whose write end is passed.</summary>
internal static class FileDescriptors
{
    /// <summary>How many descriptors the process has open (<c>/proc/self/fd</c>).</summary>
    public static int OpenCount() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>
    /// Waits (at most the test timeout) until at most <paramref name="baseline"/> descriptors are
    /// open; returns the last count seen.
    /// </summary>
    public static async Task<int> SettleAtOrBelowAsync(int baseline)
    {
        var deadline = DateTime.UtcNow + TestTimeouts.Default;
        int count;
        while ((count = OpenCount()) > baseline && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        return count;
    }

    /// <summary>A pipe: read from the returned stream; its write end is <c>ClientSafePipeHandle</c>.</summary>
    public static AnonymousPipeServerStream NewPipe() => new(PipeDirection.In, HandleInheritability.None);

    /// <summary>Reads everything until every write end is closed, within the test timeout.</summary>
    public static async Task<string> ReadToEndAsync(Stream stream)
    {
        using var reader = new StreamReader(stream, leaveOpen: true);
        return await reader.ReadToEndAsync().WaitAsync(TestTimeouts.Default);
    }

    /// <summary>Writes <paramref name="text"/> into a received write end, then closes it.</summary>
    public static void WriteAndClose(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string text)
    {
        using var stream = new FileStream(handle, FileAccess.Write, bufferSize: 0);
        stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
    }
}
