using System.IO.Pipes;
using System.Runtime.InteropServices;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Client;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Tests.Support;
using Aqmp.Pipelines.Session;
using Aqmp.Pipelines.Testing;

namespace Aqmp.Pipelines.Qmp.Tests.Integration;

/// <summary>
/// Passing file descriptors to a real QEMU 7.2 (<c>-M none</c>) over its Unix-socket monitor:
/// <c>getfd</c> and <c>add-fd</c> take the descriptors sent with them, and QEMU proves it holds
/// them (<c>closefd</c>, <c>query-fdsets</c>, <c>remove-fd</c>, and the pipe's other end, which
/// sees its end only once QEMU closed its copy). Skipped when QEMU is not on PATH, unless
/// <c>AQMP_REQUIRE_QEMU=1</c>.
/// </summary>
[TestFixture]
[Category("Qemu")]
[NonParallelizable]
public sealed class QemuDescriptorTests
{
    private static readonly QmpClientOptions Passing = new() { Session = new PipeProtocolOptions { AllowDescriptorPassing = true } };

    private readonly List<QmpClient> _clients = [];
    private QemuProcess? _qemu;

    private QemuProcess Qemu => _qemu ?? throw new InvalidOperationException("QEMU was not started.");

    [TearDown]
    public async Task StopQemuAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync().AsTask().WaitAsync(TestTimeouts.Default);
        }

        _clients.Clear();
        if (_qemu is { } qemu)
        {
            _qemu = null;
            await qemu.DisposeAsync();
        }
    }

    [Test]
    public async Task A_descriptor_passed_with_getfd_is_held_by_its_name_until_closefd_which_then_fails()
    {
        var client = await ConnectAsync();
        using var pipe = NewPipe();

        await client.GetFdAsync("mine", pipe.ClientSafePipeHandle).Bounded();
        pipe.DisposeLocalCopyOfClientHandle();
        var end = ReadToEndAsync(pipe);
        await Task.Delay(100);
        Assert.That(end.IsCompleted, Is.False, "QEMU holds a copy of the write end");

        await client.ExecuteAsync("closefd", Arguments("""{"fdname":"mine"}""")).Bounded();
        Assert.That(await end.Bounded(), Is.Empty, "closefd closed QEMU's copy: the pipe ended");
        var again = await Assert.ThrowsAsync<QmpExecuteException>(async () => await client.ExecuteAsync("closefd", Arguments("""{"fdname":"mine"}""")).Bounded());
        Assert.That(again!.Description, Is.EqualTo("File descriptor named 'mine' not found"));
    }

    [Test]
    public async Task A_descriptor_added_with_add_fd_is_listed_by_query_fdsets_and_remove_fd_releases_it()
    {
        var client = await ConnectAsync();
        using var pipe = NewPipe();

        var entry = await client.AddFdAsync(pipe.ClientSafePipeHandle, opaque: "the pipe").Bounded();
        pipe.DisposeLocalCopyOfClientHandle();
        var sets = await client.ExecuteAsync("query-fdsets").Bounded();

        Assert.That(sets.GetArrayLength(), Is.EqualTo(1));
        Assert.That(sets[0].GetProperty("fdset-id").GetInt64(), Is.EqualTo(entry.FdsetId));
        var fds = sets[0].GetProperty("fds");
        Assert.That(fds[0].GetProperty("fd").GetInt64(), Is.EqualTo(entry.Fd));
        Assert.That(fds[0].GetProperty("opaque").GetString(), Is.EqualTo("the pipe"));

        var end = ReadToEndAsync(pipe);
        await client.ExecuteAsync("remove-fd", Arguments($$"""{"fdset-id":{{entry.FdsetId}},"fd":{{entry.Fd}}}""")).Bounded();
        Assert.That(await end.Bounded(), Is.Empty, "remove-fd closed QEMU's copy: the pipe ended");
        Assert.That((await client.ExecuteAsync("query-fdsets").Bounded()).GetArrayLength(), Is.Zero, "the emptied set is gone");
    }

    [Test]
    public async Task A_file_added_to_an_fd_set_is_opened_by_QEMU_as_dev_fdset_and_what_QEMU_writes_through_it_lands_in_the_file()
    {
        var client = await ConnectAsync();
        var path = Path.Combine(Path.GetTempPath(), $"aqmp-fdset-{Guid.NewGuid():N}.img");
        try
        {
            using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                RandomAccess.SetLength(file, 4096);
                var entry = await client.AddFdAsync(file).Bounded();
                await client.ExecuteAsync("blockdev-add", Arguments($$"""{"driver":"file","node-name":"disk0","filename":"/dev/fdset/{{entry.FdsetId}}"}""")).Bounded();
            }

            await client.ExecuteAsync("human-monitor-command", Arguments("""{"command-line":"qemu-io disk0 \"write -P 0x41 0 512\""}""")).Bounded();
            await client.ExecuteAsync("blockdev-del", Arguments("""{"node-name":"disk0"}""")).Bounded();

            var written = await File.ReadAllBytesAsync(path);
            Assert.That(written.Take(512), Is.All.EqualTo((byte)0x41), "QEMU wrote through the descriptor it was passed");
            Assert.That(written.Skip(512), Is.All.EqualTo((byte)0));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public async Task When_the_client_leaves_QEMU_closes_what_its_fd_sets_hold_and_keeps_named_descriptors_for_the_next()
    {
        var client = await ConnectAsync();
        using var named = NewPipe();
        using var added = NewPipe();
        await client.GetFdAsync("kept", named.ClientSafePipeHandle).Bounded();
        await client.AddFdAsync(added.ClientSafePipeHandle).Bounded();
        await client.DisconnectAsync().Bounded();

        named.DisposeLocalCopyOfClientHandle();
        added.DisposeLocalCopyOfClientHandle();
        Assert.That(await ReadToEndAsync(added).Bounded(), Is.Empty, "the fd set's descriptor was closed");
        var namedEnd = ReadToEndAsync(named);
        await Task.Delay(100);
        Assert.That(namedEnd.IsCompleted, Is.False, "the named descriptor is kept for the next client");

        var next = new QmpClient(Passing);
        _clients.Add(next);
        await next.ConnectAsync(Qemu.Address).Bounded();
        Assert.That((await next.ExecuteAsync("query-fdsets").Bounded()).GetArrayLength(), Is.Zero);
        await next.ExecuteAsync("closefd", Arguments("""{"fdname":"kept"}""")).Bounded();
        Assert.That(await namedEnd.Bounded(), Is.Empty);
    }

    [Test]
    public async Task Two_getfd_at_once_each_give_QEMU_their_own_descriptor()
    {
        var client = await ConnectAsync();
        using var first = NewPipe();
        using var second = NewPipe();

        await Task.WhenAll(
            client.GetFdAsync("first", first.ClientSafePipeHandle),
            client.GetFdAsync("second", second.ClientSafePipeHandle)).Bounded();
        first.DisposeLocalCopyOfClientHandle();
        second.DisposeLocalCopyOfClientHandle();
        var firstEnd = ReadToEndAsync(first);
        var secondEnd = ReadToEndAsync(second);

        await client.ExecuteAsync("closefd", Arguments("""{"fdname":"first"}""")).Bounded();
        Assert.That(await firstEnd.Bounded(), Is.Empty, "the name 'first' held the first pipe");
        await Task.Delay(100);
        Assert.That(secondEnd.IsCompleted, Is.False, "the second pipe is still held");
        await client.ExecuteAsync("closefd", Arguments("""{"fdname":"second"}""")).Bounded();
        Assert.That(await secondEnd.Bounded(), Is.Empty, "the name 'second' held the second pipe");
    }

    [Test]
    public async Task A_getfd_whose_name_QEMU_refuses_leaves_no_descriptor_behind()
    {
        var client = await ConnectAsync();
        using var pipe = NewPipe();

        var refused = await Assert.ThrowsAsync<QmpExecuteException>(async () => await client.GetFdAsync("1digit", pipe.ClientSafePipeHandle).Bounded());
        pipe.DisposeLocalCopyOfClientHandle();

        Assert.That(refused!.Description, Does.Contain("fdname"));
        Assert.That(await ReadToEndAsync(pipe).Bounded(), Is.Empty, "QEMU closed the descriptor it refused");
    }

    [Test]
    public async Task A_client_that_passes_descriptors_refuses_QEMU_over_TCP_and_one_that_does_not_refuses_getfd()
    {
        _qemu = await QemuProcess.StartAsync(overTcp: true);
        var overTcp = new QmpClient(Passing);
        _clients.Add(overTcp);
        Assert.That(async () => await overTcp.ConnectAsync(Qemu.Address), Throws.InstanceOf<NotSupportedException>());

        var plain = new QmpClient();
        _clients.Add(plain);
        await plain.ConnectAsync(Qemu.Address).Bounded();
        using var pipe = NewPipe();
        Assert.That(async () => await plain.GetFdAsync("x", pipe.ClientSafePipeHandle), Throws.InstanceOf<NotSupportedException>());
        Assert.That((await plain.ExecuteAsync("query-status").Bounded()).GetProperty("status").GetString(), Is.Not.Empty, "the session goes on");
    }

    private static AnonymousPipeServerStream NewPipe() => new(PipeDirection.In, HandleInheritability.None);

    private static async Task<string> ReadToEndAsync(Stream stream)
    {
        using var reader = new StreamReader(stream, leaveOpen: true);
        return await reader.ReadToEndAsync();
    }

    private static JsonElement Arguments(string json) => JsonDocument.Parse(json).RootElement.Clone();

    private async Task<QmpClient> ConnectAsync()
    {
        _qemu = await QemuProcess.StartAsync();
        var client = new QmpClient(Passing, name: "qemu-fd");
        _clients.Add(client);
        await client.ConnectAsync(Qemu.Address).Bounded();
        return client;
    }
}
