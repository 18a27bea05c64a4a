using System.IO.Pipelines;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>Two in-memory pipes crossed over, like the two ends of a connection: what one end writes, the other reads.</summary>
internal static class DuplexPipePair
{
    public static (IDuplexPipe Left, IDuplexPipe Right) Create(PipeOptions? options = null)
    {
        var leftToRight = new Pipe(options ?? PipeOptions.Default);
        var rightToLeft = new Pipe(options ?? PipeOptions.Default);
        return (new Ends(rightToLeft.Reader, leftToRight.Writer), new Ends(leftToRight.Reader, rightToLeft.Writer));
    }

    private sealed record Ends(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
