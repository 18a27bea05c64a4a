using System.Runtime.InteropServices;
using System.Threading.Channels;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Session;
using Microsoft.Win32.SafeHandles;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// A line protocol that passes file descriptors: sends a line with descriptors, and records every
/// line it receives with the descriptors taken from its message (none when <see cref="TakesDescriptors"/> is off).
/// </summary>
internal sealed class DescriptorLineProtocol(PipeProtocolOptions? options = null)
    : PipeProtocol<string>(new Utf8LineFramer(), options ?? new PipeProtocolOptions { AllowDescriptorPassing = true, LingerTimeout = TimeSpan.Zero })
{
    private readonly Channel<(string Line, SafeFileHandle[] Descriptors)> _received = Channel.CreateUnbounded<(string, SafeFileHandle[])>();

    /// <summary>Whether the handler takes the descriptors of each line. Default true.</summary>
    public bool TakesDescriptors { get; set; } = true;

    /// <summary>Runs for each line with its descriptors instead of recording it.</summary>
    public Func<string, SafeFileHandle[], MessageContext<string>, ValueTask>? OnLine { get; set; }

    public ValueTask SendLineAsync(string line, CancellationToken cancellationToken = default) => SendAsync(line, cancellationToken);

    public ValueTask SendLineAsync(string line, SafeHandle[] descriptors, CancellationToken cancellationToken = default)
        => SendWithDescriptorsAsync(line, descriptors, cancellationToken);

    /// <summary>The next line received and its descriptors, within the test timeout.</summary>
    public async Task<(string Line, SafeFileHandle[] Descriptors)> NextAsync()
    {
        using var cts = new CancellationTokenSource(TestTimeouts.Default);
        return await _received.Reader.ReadAsync(cts.Token);
    }

    protected override async ValueTask OnMessageAsync(string message, MessageContext<string> context, CancellationToken cancellationToken)
    {
        var descriptors = TakesDescriptors ? context.TakeDescriptors() : [];
        if (OnLine is not null)
        {
            await OnLine(message, descriptors, context);
            return;
        }

        _received.Writer.TryWrite((message, descriptors));
    }
}
