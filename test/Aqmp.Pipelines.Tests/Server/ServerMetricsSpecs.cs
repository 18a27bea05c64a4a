using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Framing;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>The server's instruments, read with a <see cref="MeterListener"/> after a scripted sequence of sessions.</summary>
[NonParallelizable]
public class ServerMetricsSpecs
{
    [Test]
    public async Task After_two_sessions_a_refusal_a_peer_close_a_frame_error_and_an_accept_error_every_instrument_reads_what_happened()
    {
        var server = new PipeProtocolServer<string>(
            info =>
            {
                var session = new LineProtocol(name: "s" + info.Id, framer: new Utf8LineFramer(maximumLineLength: 16));
                session.OnLine = (line, token) => session.SendLineAsync(line, token);
                return session;
            },
            new PipeProtocolServerOptions { MaximumSessions = 2 });
        using var metrics = new Recorder(server.Meter);
        var ended = new EndRecorder(server);
        var failed = 0;
        var inner = server.AcceptSocket;
        server.AcceptSocket = (listener, token) => Interlocked.Exchange(ref failed, 1) == 0
            ? ValueTask.FromException<Socket>(new SocketException((int)SocketError.TooManyOpenSockets))
            : inner(listener, token);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();

        using var a = await ConnectAsync(endPoint);
        using var b = await ConnectAsync(endPoint);
        Assert.That(await EchoAsync(a, "hello"), Is.EqualTo("hello"));   // 6 bytes each way
        Assert.That(await EchoAsync(b, "world"), Is.EqualTo("world"));
        Assert.That(metrics.Sum(ServerMetricNames.ActiveSessions), Is.EqualTo(2));
        using (var refused = await ConnectAsync(endPoint))
        {
            Assert.That(await ClosedByPeerAsync(refused), Is.True);
        }

        a.Shutdown(SocketShutdown.Send);
        Assert.That(await ClosedByPeerAsync(a), Is.True);
        await SendLinesAsync(b, new string('x', 40));   // 41 bytes: over the framer's 16
        Assert.That(await ClosedByPeerAsync(b), Is.True);
        await ended.WaitForAsync(3);
        await server.DisposeAsync();

        Assert.Multiple(() =>
        {
            Assert.That(metrics.Sum(ServerMetricNames.StartedSessions), Is.EqualTo(2));
            Assert.That(metrics.Sum(ServerMetricNames.ActiveSessions), Is.Zero);
            Assert.That(metrics.Sum(ServerMetricNames.ActiveHandshakes), Is.Zero);
            Assert.That(metrics.Sum(ServerMetricNames.RejectedConnections), Is.EqualTo(1));
            Assert.That(metrics.Sum(ServerMetricNames.AcceptErrors), Is.EqualTo(1));
            Assert.That(metrics.SumByReason(ServerMetricNames.EndedSessions), Is.EquivalentTo(new Dictionary<string, double>
            {
                ["peer_closed"] = 1, ["frame_error"] = 1, ["refused"] = 1,
            }));
            Assert.That(metrics.Count(ServerMetricNames.SessionDuration), Is.EqualTo(2), "one duration per session that ran");
            Assert.That(metrics.Count(ServerMetricNames.HandshakeDuration), Is.EqualTo(2));
            Assert.That(metrics.Sum(ServerMetricNames.BytesReceived), Is.EqualTo(6 + 6 + 41));
            Assert.That(metrics.Sum(ServerMetricNames.BytesSent), Is.EqualTo(6 + 6));
            Assert.That(metrics.Sum(ServerMetricNames.MessagesReceived), Is.EqualTo(2), "the oversize line is no message");
            Assert.That(metrics.Sum(ServerMetricNames.MessagesSent), Is.EqualTo(2));
            Assert.That(metrics.Count(ServerMetricNames.BackpressureDuration), Is.Zero, "nobody waited");
            Assert.That(metrics.Transports, Is.EquivalentTo(new[] { "tcp" }));
        });
    }

    [Test]
    public async Task Timeouts_are_tagged_as_such_and_TLS_sessions_count_their_plaintext_bytes()
    {
        var server = new PipeProtocolServer<string>(
            Echo,
            new PipeProtocolServerOptions { HandshakeTimeout = TimeSpan.FromMilliseconds(300), IdleTimeout = TimeSpan.FromMilliseconds(300) });
        using var metrics = new Recorder(server.Meter);
        var ended = new EndRecorder(server);
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0), TestCertificates.ServerOptions()).Bounded();

        using var silent = await ConnectAsync(endPoint);
        using var socket = await ConnectAsync(endPoint);
        await using (var tls = new System.Net.Security.SslStream(new NetworkStream(socket, ownsSocket: false)))
        {
            await tls.AuthenticateAsClientAsync(TestCertificates.ClientOptions()).Bounded();
            await tls.WriteAsync("tls line\n"u8.ToArray());
            var buffer = new byte[64];
            Assert.That(await tls.ReadAsync(buffer).AsTask().Bounded(), Is.EqualTo(9));
            await ended.WaitForAsync(2);
        }

        await server.DisposeAsync();

        Assert.Multiple(() =>
        {
            Assert.That(metrics.SumByReason(ServerMetricNames.EndedSessions), Is.EquivalentTo(new Dictionary<string, double>
            {
                ["handshake_timeout"] = 1, ["idle_timeout"] = 1,
            }));
            Assert.That(metrics.Sum(ServerMetricNames.BytesReceived), Is.EqualTo(9), "the session's bytes, not the TLS records'");
            Assert.That(metrics.Sum(ServerMetricNames.BytesSent), Is.EqualTo(9));
        });
    }

    [Test]
    public async Task A_peer_that_reads_late_makes_the_senders_wait_and_each_wait_is_recorded_and_every_message_is_counted_once()
    {
        const int Lines = 5000;
        var payload = new string('x', 1023);
        var server = new PipeProtocolServer<string>(info =>
        {
            var session = new LineProtocol(name: "s" + info.Id);
            session.OnLine = async (line, token) =>
            {
                for (var i = 0; i < Lines; i++)
                {
                    await session.SendLineAsync(payload, token);
                }
            };
            return session;
        });
        using var metrics = new Recorder(server.Meter);
        // A Unix socket: its kernel buffers stay small (loopback TCP may grow them past what is sent).
        var path = Path.Combine(Path.GetTempPath(), $"aqmp-metrics-{Guid.NewGuid():N}.sock");
        var endPoint = await server.ListenAsync(new UnixDomainSocketEndPoint(path)).Bounded();
        using var client = await ConnectAsync(endPoint);

        await SendLinesAsync(client, "flood");
        await Task.Delay(200);   // the server fills the socket and its send buffer, then waits: the handler is still sending
        var received = await RawPeer.ReadLinesAsync(client, Lines).Bounded();
        await server.DisposeAsync();

        Assert.That(received, Has.Count.EqualTo(Lines));
        Assert.That(metrics.Count(ServerMetricNames.BackpressureDuration), Is.GreaterThan(0), "5 MB to a peer not reading: a flush waited");
        Assert.That(metrics.Sum(ServerMetricNames.MessagesSent), Is.EqualTo(Lines));
        Assert.That(metrics.Sum(ServerMetricNames.MessagesReceived), Is.EqualTo(1));
    }

    /// <summary>Collects every measurement of one meter's instruments.</summary>
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<(string Name, double Value, string? Reason, string? Transport)> _measurements = new();

        public Recorder(Meter meter)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter == meter)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
            _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
            _listener.Start();
        }

        public IEnumerable<string> Transports => _measurements.Select(m => m.Transport).OfType<string>().Distinct();

        public double Sum(string name) => _measurements.Where(m => m.Name == name).Sum(m => m.Value);

        public int Count(string name) => _measurements.Count(m => m.Name == name);

        public Dictionary<string, double> SumByReason(string name)
            => _measurements.Where(m => m.Name == name).GroupBy(m => m.Reason!).ToDictionary(g => g.Key, g => g.Sum(m => m.Value));

        public void Dispose() => _listener.Dispose();

        private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? reason = null, transport = null;
            foreach (var tag in tags)
            {
                if (tag.Key == ServerMetricNames.EndReasonTag)
                {
                    reason = (string?)tag.Value;
                }
                else if (tag.Key == ServerMetricNames.TransportTag)
                {
                    transport = (string?)tag.Value;
                }
            }

            _measurements.Enqueue((instrument.Name, value, reason, transport));
        }
    }
}
