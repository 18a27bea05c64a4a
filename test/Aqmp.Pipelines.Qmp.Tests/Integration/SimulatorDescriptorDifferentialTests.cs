using System.IO.Pipes;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Qmp.Tests.Integration;

/// <summary>
/// The simulator's descriptor commands against a real QEMU 7.2: the same sequence of
/// <c>getfd</c>, <c>closefd</c>, <c>add-fd</c>, <c>query-fdsets</c> and <c>remove-fd</c>, with and
/// without descriptors, runs against each over a Unix socket, and the replies (values with their
/// member order, or error class and text) must be the same, descriptor numbers aside. Skipped when QEMU is not on PATH, unless
/// <c>AQMP_REQUIRE_QEMU=1</c>.
/// </summary>
[TestFixture]
[Category("Qemu")]
[NonParallelizable]
public sealed partial class SimulatorDescriptorDifferentialTests
{
    private static readonly QmpClientOptions Passing = new() { Session = new PipeProtocolOptions { AllowDescriptorPassing = true } };

    [Test]
    public async Task The_simulator_answers_the_descriptor_commands_as_QEMU_7_2_does()
    {
        List<string> fromQemu;
        await using (var qemu = await QemuProcess.StartAsync())
        {
            fromQemu = await RunAsync(qemu.Address);
        }

        await using var simulator = await SimulatorFixture.StartAsync();
        var fromSimulator = await RunAsync(simulator.Address);

        Assert.That(fromSimulator, Has.Count.EqualTo(fromQemu.Count));
        for (var i = 0; i < fromQemu.Count; i++)
        {
            Assert.That(fromSimulator[i], Is.EqualTo(fromQemu[i]), $"step {i}");
        }
    }

    [Test]
    public async Task A_descriptor_the_simulator_took_is_closed_by_closefd_and_remove_fd()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        await using var client = new QmpClient(Passing);
        await client.ConnectAsync(simulator.Address).Bounded();
        using var named = NewPipe();
        using var added = NewPipe();

        await client.GetFdAsync("held", named.ClientSafePipeHandle).Bounded();
        var entry = await client.AddFdAsync(added.ClientSafePipeHandle).Bounded();
        named.DisposeLocalCopyOfClientHandle();
        added.DisposeLocalCopyOfClientHandle();
        var namedEnd = ReadToEndAsync(named);
        var addedEnd = ReadToEndAsync(added);
        await Task.Delay(100);
        Assert.That(namedEnd.IsCompleted || addedEnd.IsCompleted, Is.False, "the simulator holds both");

        await client.ExecuteAsync("closefd", Arguments("""{"fdname":"held"}""")).Bounded();
        Assert.That(await namedEnd.Bounded(), Is.Empty);
        await client.ExecuteAsync("remove-fd", Arguments($$"""{"fdset-id":{{entry.FdsetId}},"fd":{{entry.Fd}}}""")).Bounded();
        Assert.That(await addedEnd.Bounded(), Is.Empty);
    }

    [Test]
    public async Task Descriptors_left_in_fd_sets_are_closed_when_the_last_client_leaves_a_running_machine_and_named_ones_are_kept()
    {
        await using var simulator = await SimulatorFixture.StartAsync();
        using var named = NewPipe();
        using var added = NewPipe();
        await using (var client = new QmpClient(Passing))
        {
            await client.ConnectAsync(simulator.Address).Bounded();
            await client.GetFdAsync("kept", named.ClientSafePipeHandle).Bounded();
            await client.AddFdAsync(added.ClientSafePipeHandle).Bounded();
        }

        named.DisposeLocalCopyOfClientHandle();
        added.DisposeLocalCopyOfClientHandle();
        Assert.That(await ReadToEndAsync(added).Bounded(), Is.Empty, "the fd set's descriptor was closed");
        var namedEnd = ReadToEndAsync(named);
        await Task.Delay(100);
        Assert.That(namedEnd.IsCompleted, Is.False, "the named descriptor is kept for the next client");

        await using var next = new QmpClient(Passing);
        await next.ConnectAsync(simulator.Address).Bounded();
        Assert.That((await next.ExecuteAsync("query-fdsets").Bounded()).GetArrayLength(), Is.Zero);
        await next.ExecuteAsync("closefd", Arguments("""{"fdname":"kept"}""")).Bounded();
        Assert.That(await namedEnd.Bounded(), Is.Empty);
    }

    /// <summary>Runs the sequence against the server at <paramref name="address"/>; returns each reply, descriptor numbers normalised.</summary>
    private static async Task<List<string>> RunAsync(string address)
    {
        await using var client = new QmpClient(Passing);
        await client.ConnectAsync(address).Bounded();
        var replies = new List<string>();
        var pipes = new List<AnonymousPipeServerStream>();
        var added = new List<QmpFdSetEntry>();
        try
        {
            await Step(() => client.ExecuteAsync("getfd", Arguments("""{"fdname":"a"}""")));
            await Step(() => client.ExecuteAsync("getfd", Arguments("""{"fdname":"a"}"""), Pipe()));
            await Step(() => client.ExecuteAsync("getfd", Arguments("""{"fdname":"9x"}"""), Pipe()));
            await Step(() => client.ExecuteAsync("getfd", Arguments("""{"fdname":"a"}"""), Pipe()));
            await Step(() => client.ExecuteAsync("getfd", Arguments("""{"name":"a"}"""), Pipe()));
            await Step(() => client.ExecuteAsync("closefd", Arguments("""{"fdname":"a"}""")));
            await Step(() => client.ExecuteAsync("closefd", Arguments("""{"fdname":"a"}""")));
            await Step(() => client.ExecuteAsync("closefd", Arguments("""{"fdname":"never"}""")));
            await Step(() => AddAsync("""{"opaque":"one"}"""));
            await Step(() => AddAsync("""{"fdset-id":0}"""));
            await Step(() => AddAsync("""{"fdset-id":5,"opaque":"five"}"""));
            await Step(() => AddAsync("{}"));
            await Step(() => AddAsync("""{"fdset-id":-1}"""));
            await Step(() => client.ExecuteAsync("add-fd", Arguments("{}")));
            await Step(() => client.ExecuteAsync("query-fdsets"));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments($$"""{"fdset-id":0,"fd":{{added[0].Fd}}}""")));
            await Step(() => client.ExecuteAsync("query-fdsets"));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fdset-id":5}""")));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fdset-id":5}""")));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fdset-id":1,"fd":99999}""")));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fd":1}""")));
            await Step(() => client.ExecuteAsync("query-fdsets"));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fdset-id":0}""")));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fdset-id":1}""")));
            await Step(() => client.ExecuteAsync("query-fdsets"));
            await Step(() => client.ExecuteAsync("stop"));
            await Step(() => AddAsync("""{"opaque":"paused"}"""));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fdset-id":0}""")));
            await Step(() => client.ExecuteAsync("query-fdsets"));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fdset-id":0}""")));
            await Step(() => client.ExecuteAsync("cont"));
            await Step(() => client.ExecuteAsync("query-fdsets"));
            await Step(() => client.ExecuteAsync("remove-fd", Arguments("""{"fdset-id":0}""")));
            await Step(() => client.ExecuteAsync("query-fdsets"));
        }
        finally
        {
            foreach (var pipe in pipes)
            {
                pipe.Dispose();
            }
        }

        return replies;

        SafeHandle[] Pipe()
        {
            var pipe = new AnonymousPipeServerStream(PipeDirection.In, HandleInheritability.None);
            pipes.Add(pipe);
            return [pipe.ClientSafePipeHandle];
        }

        async Task<JsonElement> AddAsync(string arguments)
        {
            var value = await client.ExecuteAsync("add-fd", Arguments(arguments), Pipe());
            added.Add(new QmpFdSetEntry(value.GetProperty("fdset-id").GetInt64(), value.GetProperty("fd").GetInt64()));
            return value;
        }

        async Task Step(Func<Task<JsonElement>> run)
        {
            string reply;
            try
            {
                reply = "return " + (await run().WaitAsync(TestTimeouts.Default)).GetRawText();
            }
            catch (QmpExecuteException error)
            {
                reply = $"error {error.ErrorClass}: {error.Description}";
            }

            // Descriptor numbers are each process's own (and reused once closed): only where one stands is compared.
            replies.Add(FdNumber().Replace(reply, "\"fd\":N"));
        }
    }

    private static AnonymousPipeServerStream NewPipe() => new(PipeDirection.In, HandleInheritability.None);

    private static async Task<string> ReadToEndAsync(Stream stream)
    {
        using var reader = new StreamReader(stream, leaveOpen: true);
        return await reader.ReadToEndAsync();
    }

    private static JsonElement Arguments(string json) => JsonDocument.Parse(json).RootElement.Clone();

    [GeneratedRegex("\"fd\":\\s*(\\d+)")]
    private static partial Regex FdNumber();
}
