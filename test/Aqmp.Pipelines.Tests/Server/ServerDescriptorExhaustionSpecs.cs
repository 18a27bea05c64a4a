using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Server;
using Aqmp.Pipelines.Tests.Support;
using Microsoft.Extensions.Logging;
using static Aqmp.Pipelines.Tests.Server.ServerSpecKit;

namespace Aqmp.Pipelines.Tests.Server;

/// <summary>
/// A server whose process really runs out of file descriptors (its soft <c>RLIMIT_NOFILE</c>
/// lowered to just above the descriptors open): accepting fails with EMFILE, which is logged,
/// counted and retried, and once descriptors are available again every waiting client is served.
/// </summary>
/// <remarks>Runs alone: while the limit is low, nothing else in the test process can open a descriptor.</remarks>
[NonParallelizable]
[Platform(Include = "Linux")]
public class ServerDescriptorExhaustionSpecs
{
    /// <summary>Accepts that succeed before the process is out of descriptors.</summary>
    private const int Free = 4;

    /// <summary>Clients connected while descriptors are scarce: more than can be accepted.</summary>
    private const int Clients = Free + 6;

    [Test]
    public async Task Accepts_failing_with_EMFILE_are_logged_counted_and_retried_and_every_waiting_client_is_then_served()
    {
        var log = new WarningLog();
        await using var server = new PipeProtocolServer<string>(Echo, loggerFactory: log);
        long meteredErrors = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter == server.Meter && instrument.Name == ServerMetricNames.AcceptErrors)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref meteredErrors, value));
        listener.Start();
        var endPoint = await server.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0)).Bounded();
        using (var warmUp = await ConnectAsync(endPoint))
        {
            // Every path the scarce phase takes is loaded and compiled before it begins.
            Assert.That(await EchoAsync(warmUp, "warm"), Is.EqualTo("warm"));
        }

        // The clients' sockets exist before the limit drops: connecting needs no new descriptor,
        // and the kernel completes each connection in the listen backlog before it is accepted.
        var clients = Enumerable.Range(0, Clients).Select(_ => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }).ToArray();
        try
        {
            using (DescriptorLimit.LeaveFree(Free))
            {
                foreach (var client in clients)
                {
                    await client.ConnectAsync(endPoint).Bounded();
                }

                await WaitUntilAsync(() => server.AcceptErrors > 0, "an accept fails for want of descriptors");
            }

            Assert.That(
                log.Warnings.Select(w => (w.Error as SocketException)?.SocketErrorCode),
                Has.Some.EqualTo(SocketError.TooManyOpenSockets),
                "EMFILE is logged");
            await WaitUntilAsync(() => server.AcceptedConnections == 1 + Clients, $"every waiting client is accepted (so far {server.AcceptedConnections - 1})");
            var echoes = await Task.WhenAll(clients.Select((client, i) => EchoAsync(client, "client " + i))).Bounded();
            using var later = await ConnectAsync(endPoint);
            var laterEcho = await EchoAsync(later, "and a new one");

            TestContext.Out.WriteLine($"{server.AcceptErrors} accept errors: {log.Warnings[0].Text}");
            Assert.Multiple(() =>
            {
                Assert.That(echoes, Is.EqualTo(Enumerable.Range(0, Clients).Select(i => "client " + i)));
                Assert.That(laterEcho, Is.EqualTo("and a new one"));
                Assert.That(server.EndPoints, Has.Count.EqualTo(1), "the listener is still open");
                Assert.That(Interlocked.Read(ref meteredErrors), Is.EqualTo(server.AcceptErrors), "each error is metered");
                Assert.That(log.Warnings.Count(w => w.Text.StartsWith("Accepting a client failed", StringComparison.Ordinal)), Is.EqualTo(server.AcceptErrors), "each error is logged");
            });
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    /// <summary>A logger factory keeping every warning's text and exception in memory (it opens nothing).</summary>
    private sealed class WarningLog : ILoggerFactory, ILogger
    {
        private readonly List<(string Text, Exception? Error)> _warnings = [];

        public IReadOnlyList<(string Text, Exception? Error)> Warnings
        {
            get
            {
                lock (_warnings)
                {
                    return [.. _warnings];
                }
            }
        }

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lock (_warnings)
                {
                    _warnings.Add((formatter(state, exception), exception));
                }
            }
        }

        public void Dispose()
        {
        }
    }
}
