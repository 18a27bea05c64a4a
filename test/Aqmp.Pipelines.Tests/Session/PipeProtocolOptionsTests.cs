using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Tests.Session;

public class PipeProtocolOptionsTests
{
    [Test]
    public void Defaults_are_valid()
    {
        Assert.DoesNotThrow(() => PipeProtocolOptions.Default.Validate());
    }

    [TestCase(nameof(PipeProtocolOptions.OutboundBatchBytes))]
    [TestCase(nameof(PipeProtocolOptions.ReceivePauseThreshold))]
    [TestCase(nameof(PipeProtocolOptions.ReceiveResumeThreshold))]
    [TestCase(nameof(PipeProtocolOptions.SendPauseThreshold))]
    [TestCase(nameof(PipeProtocolOptions.SendResumeThreshold))]
    [TestCase(nameof(PipeProtocolOptions.MinimumSegmentSize))]
    [TestCase(nameof(PipeProtocolOptions.LingerTimeout))]
    [TestCase(nameof(PipeProtocolOptions.ListenBacklog))]
    [TestCase(nameof(PipeProtocolOptions.DisposeDrainTimeout))]
    public void An_out_of_range_setting_is_rejected_when_the_protocol_is_constructed(string setting)
    {
        var options = setting switch
        {
            nameof(PipeProtocolOptions.OutboundBatchBytes) => new PipeProtocolOptions { OutboundBatchBytes = 0 },
            nameof(PipeProtocolOptions.ReceivePauseThreshold) => new PipeProtocolOptions { ReceivePauseThreshold = 0, ReceiveResumeThreshold = 0 },
            nameof(PipeProtocolOptions.ReceiveResumeThreshold) => new PipeProtocolOptions { ReceiveResumeThreshold = 2 << 20 },
            nameof(PipeProtocolOptions.SendPauseThreshold) => new PipeProtocolOptions { SendPauseThreshold = 0, SendResumeThreshold = 0 },
            nameof(PipeProtocolOptions.SendResumeThreshold) => new PipeProtocolOptions { SendResumeThreshold = 2 << 20 },
            nameof(PipeProtocolOptions.MinimumSegmentSize) => new PipeProtocolOptions { MinimumSegmentSize = 0 },
            nameof(PipeProtocolOptions.LingerTimeout) => new PipeProtocolOptions { LingerTimeout = TimeSpan.FromSeconds(-1) },
            nameof(PipeProtocolOptions.DisposeDrainTimeout) => new PipeProtocolOptions { DisposeDrainTimeout = TimeSpan.FromSeconds(-2) },
            _ => new PipeProtocolOptions { ListenBacklog = 0 },
        };

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new Support.LineProtocol(options));
        Assert.That(error!.ParamName, Is.EqualTo(setting));
    }

    [Test]
    public void The_transport_gets_the_thresholds_as_configured_because_the_pipe_counts_only_unexamined_bytes()
    {
        var options = new PipeProtocolOptions { ReceivePauseThreshold = 1 << 20, ReceiveResumeThreshold = 1 << 19 };

        var transport = options.ToTransportOptions();

        Assert.That(transport.ReceivePipeOptions.PauseWriterThreshold, Is.EqualTo(1L << 20));
        Assert.That(transport.ReceivePipeOptions.ResumeWriterThreshold, Is.EqualTo(1L << 19));
        Assert.That(transport.SendPipeOptions.PauseWriterThreshold, Is.EqualTo(options.SendPauseThreshold));
        Assert.That(transport.ReceivePipeOptions.MinimumSegmentSize, Is.EqualTo(options.MinimumSegmentSize));
        Assert.That(transport.LingerTimeout, Is.EqualTo(options.LingerTimeout));
    }
}
