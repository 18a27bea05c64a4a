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
    [TestCase(nameof(PipeProtocolOptions.ReceiveBufferSize))]
    [TestCase(nameof(PipeProtocolOptions.SendPauseThreshold))]
    [TestCase(nameof(PipeProtocolOptions.SendResumeThreshold))]
    [TestCase(nameof(PipeProtocolOptions.MinimumSegmentSize))]
    [TestCase(nameof(PipeProtocolOptions.LingerTimeout))]
    [TestCase(nameof(PipeProtocolOptions.ListenBacklog))]
    [TestCase(nameof(PipeProtocolOptions.DisposeDrainTimeout))]
    [TestCase(nameof(PipeProtocolOptions.InputDrainTimeout))]
    public void An_out_of_range_setting_is_rejected_when_the_protocol_is_constructed(string setting)
    {
        var options = setting switch
        {
            nameof(PipeProtocolOptions.OutboundBatchBytes) => new PipeProtocolOptions { OutboundBatchBytes = 0 },
            nameof(PipeProtocolOptions.ReceiveBufferSize) => new PipeProtocolOptions { ReceiveBufferSize = 0 },
            nameof(PipeProtocolOptions.SendPauseThreshold) => new PipeProtocolOptions { SendPauseThreshold = 0, SendResumeThreshold = 0 },
            nameof(PipeProtocolOptions.SendResumeThreshold) => new PipeProtocolOptions { SendResumeThreshold = 2 << 20 },
            nameof(PipeProtocolOptions.MinimumSegmentSize) => new PipeProtocolOptions { MinimumSegmentSize = 0 },
            nameof(PipeProtocolOptions.LingerTimeout) => new PipeProtocolOptions { LingerTimeout = TimeSpan.FromSeconds(-1) },
            nameof(PipeProtocolOptions.DisposeDrainTimeout) => new PipeProtocolOptions { DisposeDrainTimeout = TimeSpan.FromSeconds(-2) },
            nameof(PipeProtocolOptions.InputDrainTimeout) => new PipeProtocolOptions { InputDrainTimeout = TimeSpan.FromSeconds(-1) },
            _ => new PipeProtocolOptions { ListenBacklog = 0 },
        };

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new Support.LineProtocol(options));
        Assert.That(error!.ParamName, Is.EqualTo(setting));
    }

    [Test]
    public void The_transport_gets_the_send_thresholds_and_the_read_size_as_configured()
    {
        var options = new PipeProtocolOptions { SendPauseThreshold = 1 << 20, SendResumeThreshold = 1 << 19, ReceiveBufferSize = 8192, WaitForDataBeforeAllocatingBuffer = false };

        var transport = options.ToTransportOptions();

        Assert.That(transport.SendPipeOptions.PauseWriterThreshold, Is.EqualTo(1L << 20));
        Assert.That(transport.SendPipeOptions.ResumeWriterThreshold, Is.EqualTo(1L << 19));
        Assert.That(transport.SendPipeOptions.MinimumSegmentSize, Is.EqualTo(options.MinimumSegmentSize));
        Assert.That(transport.ReceiveBufferSize, Is.EqualTo(8192));
        Assert.That(transport.WaitForDataBeforeAllocatingBuffer, Is.False);
        Assert.That(transport.LingerTimeout, Is.EqualTo(options.LingerTimeout));
    }

    [Test]
    public void By_default_segments_are_64_KiB_and_a_default_read_comes_from_the_sessions_pool()
    {
        var options = new PipeProtocolOptions();
        using var pool = options.CreateSegmentPool();

        var transport = options.ToTransportOptions(pool);

        Assert.That(pool.MaxBufferSize, Is.EqualTo(64 * 1024));
        Assert.That(transport.SendPipeOptions.MinimumSegmentSize, Is.EqualTo(64 * 1024));
        Assert.That(transport.ReceivePool, Is.SameAs(pool));
    }

    [TestCase(16 * 1024, true)]
    [TestCase(64 * 1024, false)]
    public void Reads_use_the_sessions_segment_pool_only_when_one_read_fits_in_a_block(int receiveBufferSize, bool usesPool)
    {
        var options = new PipeProtocolOptions { MinimumSegmentSize = 16 * 1024, ReceiveBufferSize = receiveBufferSize };
        using var pool = options.CreateSegmentPool();

        var transport = options.ToTransportOptions(pool);

        Assert.That(transport.ReceivePool, usesPool ? Is.SameAs(pool) : Is.Null);
        Assert.That(transport.SendPipeOptions.Pool, Is.SameAs(pool));
    }
}
