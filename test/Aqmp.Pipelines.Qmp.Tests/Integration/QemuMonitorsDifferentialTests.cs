using System.Text.Json;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Qmp.Tests.Integration;

/// <summary>
/// Several monitors of one machine, against the real thing: a QEMU with two <c>-qmp</c> monitors
/// and a simulator serving two clients (<see cref="QmpSimulatorOptions.MaximumClients"/>) are given
/// the same conversation, and what each client receives must be the same once timestamps and the
/// greeting's version are set aside. Skipped when QEMU is not on PATH, unless <c>AQMP_REQUIRE_QEMU=1</c>.
/// </summary>
[TestFixture]
[Category("Qemu")]
public sealed class QemuMonitorsDifferentialTests
{
    [Test]
    public async Task Two_monitors_of_one_machine_hear_the_same_events_as_on_QEMU_and_quit_closes_both()
    {
        var second = Path.Combine(Path.GetTempPath(), $"aqmp-qemu-{Guid.NewGuid():N}-2.sock");
        await using var qemu = await QemuProcess.StartAsync(machine: ["-M", "none", "-qmp", $"unix:{second},server=on,wait=off"]);
        await using var simulator = await SimulatorFixture.StartAsync(new QmpSimulatorOptions { MaximumClients = 2 });

        var fromQemu = ConverseAsync(qemu.SocketPath, second);
        var fromSimulator = ConverseAsync(simulator.Path, simulator.Path);
        var (qemuTranscript, simulatorTranscript) = (await fromQemu, await fromSimulator);
        File.Delete(second);

        await TestContext.Out.WriteLineAsync("QEMU:\n" + string.Join("\n", qemuTranscript));
        Assert.That(simulatorTranscript, Is.EqualTo(qemuTranscript));
        Assert.That(await simulator.Simulator.Completion.Bounded(), Is.EqualTo(QmpSimulatorStopReason.Quit));
    }

    /// <summary>
    /// One monitor negotiates and stops the machine while the other is still negotiating; the
    /// second then negotiates, the first resumes the machine, and the second quits.
    /// </summary>
    private static async Task<List<string>> ConverseAsync(string firstPath, string secondPath)
    {
        var transcript = new List<string>();
        await using var first = await RawQmpPeer.ConnectAsync(firstPath);
        Record(transcript, "first", await first.ReadAsync());
        Record(transcript, "first", await first.ExecuteAsync("qmp_capabilities", 1));
        await using var second = await RawQmpPeer.ConnectAsync(secondPath);
        Record(transcript, "second", await second.ReadAsync());

        await first.SendAsync("""{"execute":"stop","id":2}""");
        await ReadReplyAsync(transcript, "first", first);
        Record(transcript, "second", await second.ExecuteAsync("qmp_capabilities", 3));

        await first.SendAsync("""{"execute":"cont","id":4}""");
        await ReadReplyAsync(transcript, "first", first);
        Record(transcript, "second", await second.ReadAsync());

        await second.SendAsync("""{"execute":"quit","id":5}""");
        await ReadReplyAsync(transcript, "second", second);
        Record(transcript, "first", await first.ReadAsync());
        await first.ClosesAsync();
        transcript.Add("first: closed");
        await second.ClosesAsync();
        transcript.Add("second: closed");
        return transcript;
    }

    /// <summary>Records what arrives up to and including the next reply (events before it included).</summary>
    private static async Task ReadReplyAsync(List<string> transcript, string who, RawQmpPeer peer)
    {
        JsonElement message;
        do
        {
            message = await peer.ReadAsync();
            Record(transcript, who, message);
        }
        while (message.TryGetProperty("event", out _));
    }

    private static void Record(List<string> transcript, string who, JsonElement message)
    {
        var text = message.TryGetProperty("QMP", out _) ? "greeting"
            : message.TryGetProperty("event", out var name) ? $"event {name.GetString()} {(message.TryGetProperty("data", out var data) ? data.Compact() : "-")}"
            : message.Compact();
        transcript.Add($"{who}: {text}");
    }
}
