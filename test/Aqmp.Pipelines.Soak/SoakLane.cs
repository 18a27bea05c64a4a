using System.Net.Sockets;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Session;

namespace Aqmp.Pipelines.Soak;

/// <summary>
/// One lane of the soak: a simulator of its own (it serves one client at a time, like QEMU), one
/// client with several echo executes in flight, a supervisor that reconnects whenever the session
/// is gone, and a fault injector that, at random moments, disconnects or disposes the client
/// mid-flight, restarts the simulator (killing the session from the server's side), or cancels the
/// executes in flight.
/// </summary>
internal sealed class SoakLane
{
    /// <summary>No single operation (execute, connect, disconnect, restart) may take longer than this.</summary>
    public static readonly TimeSpan Watchdog = TimeSpan.FromSeconds(10);

    private const int InFlight = 4;
    private const string Echo = "echo";

    private readonly int _index;
    private readonly string _path;
    private readonly SoakCounters _counters;
    private readonly Random _faultRandom;
    private readonly int _seed;
    private QmpClient _client;
    private QmpSimulator? _simulator;
    private CancellationTokenSource _executeCancel = new();
    private long _sequence;

    public SoakLane(int index, int seed, SoakCounters counters)
    {
        _index = index;
        _seed = seed;
        _counters = counters;
        _faultRandom = new Random(seed);
        _path = Path.Combine(Path.GetTempPath(), $"aqmp-soak-{Environment.ProcessId}-{index}.sock");
        _client = NewClient();
    }

    private string Address => "unix:" + _path;

    /// <summary>Runs traffic and faults until <paramref name="stop"/> fires, then closes everything.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        _simulator = await StartSimulatorAsync();
        var faults = Task.Run(() => InjectFaultsAsync(stop), CancellationToken.None);
        try
        {
            await SuperviseAsync(stop);
        }
        finally
        {
            await faults;
            await BoundedAsync(Volatile.Read(ref _client).DisposeAsync().AsTask(), "final client dispose");
            if (Volatile.Read(ref _simulator) is { } simulator)
            {
                await BoundedAsync(simulator.DisposeAsync().AsTask(), "final simulator dispose");
            }

            File.Delete(_path);
        }
    }

    private QmpClient NewClient() => new(name: $"soak-{_index}");

    private async Task<QmpSimulator> StartSimulatorAsync()
    {
        File.Delete(_path); // a socket file left by a simulator that did not remove its own
        var simulator = new QmpSimulator();
        simulator.Handle(Echo, (context, _) => ValueTask.FromResult(context.Arguments?.Clone()));
        await simulator.StartAsync(new UnixDomainSocketEndPoint(_path)).WaitAsync(Watchdog);
        return simulator;
    }

    /// <summary>Connect; run the executes until the session is gone; collect its end; again.</summary>
    private async Task SuperviseAsync(CancellationToken stop)
    {
        var first = true;
        while (!stop.IsCancellationRequested)
        {
            var client = await ConnectAsync(stop);
            if (client is null)
            {
                return;
            }

            if (!first)
            {
                _counters.CountReconnect();
            }

            first = false;
            var workers = Enumerable.Range(0, InFlight).Select(worker => Task.Run(() => WorkAsync(client, worker, stop), CancellationToken.None));
            await Task.WhenAll(workers);
            await DisconnectQuietlyAsync(client, "supervisor disconnect");
        }
    }

    /// <summary>Connects the lane's client, retrying while the simulator restarts; null once stopped.</summary>
    private async Task<QmpClient?> ConnectAsync(CancellationToken stop)
    {
        var random = new Random(_seed ^ 0x5eed);
        while (!stop.IsCancellationRequested)
        {
            var client = Volatile.Read(ref _client);
            try
            {
                await client.ConnectAsync(Address, cancellationToken: stop).WaitAsync(Watchdog, CancellationToken.None);
                return client;
            }
            catch (TimeoutException)
            {
                _counters.CountHang($"lane {_index}: ConnectAsync");
                return null;
            }
            catch (ObjectDisposedException)
            {
                // A fault disposed it: the lane goes on with a fresh client.
                Interlocked.CompareExchange(ref _client, NewClient(), client);
            }
            catch (StateException)
            {
                // A fault's disconnect is still under way: let it finish.
                await DisconnectQuietlyAsync(client, "disconnect before reconnecting");
            }
            catch (Exception ex) when (ex is ConnectException or QmpNegotiationException or OperationCanceledException)
            {
                // The simulator is restarting (refused, no socket file, backlog full, or it went
                // away during the negotiation), or a fault hung up during the connect.
            }

            await Task.Delay(random.Next(1, 20), CancellationToken.None);
        }

        return null;
    }

    /// <summary>One executor: echo with a fresh sequence number, check the reply, until the session is gone.</summary>
    private async Task WorkAsync(QmpClient client, int worker, CancellationToken stop)
    {
        var random = new Random(HashCode.Combine(_seed, worker, Interlocked.Read(ref _sequence)));
        while (!stop.IsCancellationRequested && client.Runstate == Runstate.Running)
        {
            var sequence = Interlocked.Increment(ref _sequence);
            var pad = new string((char)('a' + random.Next(26)), random.Next(0, 200));
            var arguments = QmpJson.Write(writer =>
            {
                writer.WriteStartObject();
                writer.WriteNumber("lane", _index);
                writer.WriteNumber("seq", sequence);
                writer.WriteString("pad", pad);
                writer.WriteEndObject();
            });
            var cancel = Volatile.Read(ref _executeCancel).Token;

            _counters.CountSent();
            Task<JsonElement> execute;
            try
            {
                execute = client.ExecuteAsync(Echo, arguments, cancel);
            }
            catch (Exception ex)
            {
                execute = Task.FromException<JsonElement>(ex);
            }

            if (!await AccountAsync(execute, sequence, pad, cancel))
            {
                return;
            }
        }
    }

    /// <summary>Counts how one execute ended; false when the session is gone (or the execute was lost).</summary>
    private async Task<bool> AccountAsync(Task<JsonElement> execute, long sequence, string pad, CancellationToken cancel)
    {
        try
        {
            var reply = await execute.WaitAsync(Watchdog);
            if (reply.GetProperty("lane").GetInt32() == _index && reply.GetProperty("seq").GetInt64() == sequence && reply.GetProperty("pad").GetString() == pad)
            {
                _counters.CountReceived();
                return true;
            }

            _counters.CountLost($"lane {_index}: seq {sequence}: wrong reply {reply.GetRawText()}");
            return false;
        }
        catch (TimeoutException) when (!execute.IsCompleted)
        {
            _counters.CountHang($"lane {_index}: echo seq {sequence} had no outcome within {Watchdog.TotalSeconds:F0} s");
            _counters.CountLost($"lane {_index}: seq {sequence}: hung");
            _ = execute.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            return false;
        }
        catch (QmpExecuteInterruptedException)
        {
            _counters.CountInterrupted("session ended before the reply");
            return false;
        }
        catch (StateException)
        {
            _counters.CountInterrupted("not running");
            return false;
        }
        catch (ObjectDisposedException)
        {
            _counters.CountInterrupted("client disposed");
            return false;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            _counters.CountInterrupted("cancelled");
            return true;
        }
        catch (Exception ex)
        {
            _counters.CountLost($"lane {_index}: seq {sequence}: {ex.GetType().Name}: {ex.Message}");
            return false;
        }
    }

    private async Task InjectFaultsAsync(CancellationToken stop)
    {
        while (true)
        {
            try
            {
                await Task.Delay(_faultRandom.Next(20, 400), stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var dice = _faultRandom.Next(100);
            var client = Volatile.Read(ref _client);
            switch (dice)
            {
                case < 30:
                    _counters.CountFault("client-disconnect");
                    await DisconnectQuietlyAsync(client, "fault: DisconnectAsync mid-flight");
                    break;
                case < 45:
                    _counters.CountFault("client-dispose");
                    await BoundedAsync(client.DisposeAsync().AsTask(), "fault: DisposeAsync mid-flight");
                    break;
                case < 70:
                    _counters.CountFault("simulator-restart");
                    await RestartSimulatorAsync(TimeSpan.FromMilliseconds(_faultRandom.Next(0, 100)));
                    break;
                default:
                    _counters.CountFault("cancel-executes");
                    var previous = Interlocked.Exchange(ref _executeCancel, new CancellationTokenSource());
                    await previous.CancelAsync(); // not disposed: workers may still read its token
                    break;
            }
        }
    }

    private async Task RestartSimulatorAsync(TimeSpan down)
    {
        if (Volatile.Read(ref _simulator) is { } old)
        {
            await BoundedAsync(old.DisposeAsync().AsTask(), "fault: simulator stop");
        }

        await Task.Delay(down);
        try
        {
            Volatile.Write(ref _simulator, await StartSimulatorAsync());
        }
        catch (TimeoutException)
        {
            _counters.CountHang($"lane {_index}: simulator start");
        }
    }

    private async Task DisconnectQuietlyAsync(QmpClient client, string what)
    {
        try
        {
            await client.DisconnectAsync().WaitAsync(Watchdog);
        }
        catch (TimeoutException)
        {
            _counters.CountHang($"lane {_index}: {what}");
        }
        catch (Exception)
        {
            // The root cause of a session a fault ended (the simulator went away): expected here.
        }
    }

    private async Task BoundedAsync(Task task, string what)
    {
        try
        {
            await task.WaitAsync(Watchdog);
        }
        catch (TimeoutException)
        {
            _counters.CountHang($"lane {_index}: {what}");
        }
    }
}
