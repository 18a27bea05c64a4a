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
            _ => new PipeProtocolOptions { ListenBacklog = 0 },
        };

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new Support.LineProtocol(options));
        Assert.That(error!.ParamName, Is.EqualTo(setting));
    }

    [Test]
    public void The_receive_pause_threshold_is_raised_above_the_largest_frame_so_a_partial_frame_never_stalls_the_pipe()
    {
        var options = new PipeProtocolOptions { ReceivePauseThreshold = 1 << 20, ReceiveResumeThreshold = 1 << 19, MinimumSegmentSize = 4096 };

        var transport = options.ToTransportOptions(maximumFrameLength: 10 << 20);

        Assert.That(transport.ReceivePipeOptions.PauseWriterThreshold, Is.GreaterThan(10L << 20));
        Assert.That(transport.ReceivePipeOptions.ResumeWriterThreshold, Is.LessThanOrEqualTo(transport.ReceivePipeOptions.PauseWriterThreshold));
        Assert.That(transport.SendPipeOptions.PauseWriterThreshold, Is.EqualTo(options.SendPauseThreshold));
    }

    [Test]
    public void Thresholds_the_frame_fits_under_are_kept_as_configured()
    {
        var options = new PipeProtocolOptions { ReceivePauseThreshold = 1 << 20, ReceiveResumeThreshold = 1 << 19 };

        var transport = options.ToTransportOptions(maximumFrameLength: 64 * 1024 + 2);

        Assert.That(transport.ReceivePipeOptions.PauseWriterThreshold, Is.EqualTo(1L << 20));
        Assert.That(transport.ReceivePipeOptions.ResumeWriterThreshold, Is.EqualTo(1L << 19));
        Assert.That(transport.ReceivePipeOptions.MinimumSegmentSize, Is.EqualTo(options.MinimumSegmentSize));
        Assert.That(transport.LingerTimeout, Is.EqualTo(options.LingerTimeout));
    }
}
