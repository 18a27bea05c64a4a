using System.Buffers;
using Aqmp.Pipelines.Tests.Support;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

public class DuplexPipeConnectionTests
{
    private static readonly string[] CloseOrders =
    [
        "Close,Close",
        "Abort,Abort",
        "Dispose,Dispose",
        "Close,Abort,Dispose",
        "Abort,Close,Dispose",
        "Dispose,Close,Abort",
    ];

    [Test]
    public async Task Open_reads_the_given_pipe_itself_writes_through_its_own_send_buffer_and_has_no_endpoints()
    {
        var (local, remote) = DuplexPipePair.Create();

        await using var connection = SocketTransport.Open(local);

        Assert.That(connection.Pipe.Input, Is.SameAs(local.Input));
        Assert.That(connection.Pipe.Output, Is.Not.SameAs(local.Output), "what is flushed reaches the pipe through the connection's send loop");
        Assert.That(connection.LocalEndPoint, Is.Null);
        Assert.That(connection.RemoteEndPoint, Is.Null);
    }

    [Test]
    public async Task A_foreign_connection_is_adopted_with_a_send_buffer_of_its_own_that_reports_its_endpoints_and_input_error()
    {
        var (local, _) = DuplexPipePair.Create();
        var foreign = new EndPointConnection(local);

        await using var adopted = SocketTransport.Adopt(foreign, TransportOptions.Default);

        Assert.That(adopted, Is.Not.SameAs(foreign));
        Assert.That(adopted.Pipe.Output, Is.InstanceOf<SendBuffer>());
        Assert.That(adopted.Pipe.Input, Is.SameAs(local.Input));
        Assert.That(adopted.LocalEndPoint, Is.SameAs(EndPointConnection.Local));
        Assert.That(adopted.RemoteEndPoint, Is.SameAs(EndPointConnection.Remote));
        Assert.That(adopted.InputError, Is.SameAs(EndPointConnection.Error));
    }

    [Test]
    public async Task One_of_the_librarys_own_connections_is_adopted_as_it_is()
    {
        var (local, _) = DuplexPipePair.Create();
        await using var own = SocketTransport.Open(local);

        Assert.That(SocketTransport.Adopt(own, TransportOptions.Default), Is.SameAs(own));
    }

    [Test]
    public async Task Bytes_written_on_the_connection_reach_the_other_end_and_back()
    {
        var (local, remote) = DuplexPipePair.Create();
        await using var connection = SocketTransport.Open(local);

        await PipeIO.WriteAsync(connection.Pipe.Output, [1, 2, 3]);
        Assert.That(await PipeIO.ReadExactlyAsync(remote.Input, 3), Is.EqualTo(new byte[] { 1, 2, 3 }));

        await PipeIO.WriteAsync(remote.Output, [4, 5]);
        Assert.That(await PipeIO.ReadExactlyAsync(connection.Pipe.Input, 2), Is.EqualTo(new byte[] { 4, 5 }));
    }

    [Test]
    public async Task WaitUntilSentAsync_completes_once_the_send_loop_has_flushed_everything_into_the_pipe()
    {
        var (local, remote) = DuplexPipePair.Create();
        await using var connection = SocketTransport.Open(local);
        await PipeIO.WriteAsync(connection.Pipe.Output, [1, 2, 3]);

        await connection.WaitUntilSentAsync().AsTask().Bounded();

        var read = remote.Input.ReadAsync();
        Assert.That(read.IsCompleted, Is.True, "the bytes are in the pipe, flushed, when the wait ends");
        Assert.That((await read).Buffer.ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public async Task CloseAsync_completes_the_writer_so_the_other_end_reads_what_was_flushed_then_IsCompleted()
    {
        var (local, remote) = DuplexPipePair.Create();
        var connection = SocketTransport.Open(local);
        await PipeIO.WriteAsync(connection.Pipe.Output, [7, 8, 9]);

        await connection.CloseAsync().Bounded();

        var result = await remote.Input.ReadAsync().Bounded();
        Assert.That(result.Buffer.ToArray(), Is.EqualTo(new byte[] { 7, 8, 9 }));
        Assert.That(result.IsCompleted, Is.True);
    }

    [Test]
    public async Task CloseAsync_completes_the_reader_so_the_other_ends_flush_reports_IsCompleted()
    {
        var (local, remote) = DuplexPipePair.Create();
        var connection = SocketTransport.Open(local);

        await connection.CloseAsync().Bounded();

        var flush = await remote.Output.WriteAsync(new byte[] { 1 }).AsTask().Bounded();
        Assert.That(flush.IsCompleted, Is.True);
    }

    [Test]
    public async Task Abort_completes_the_writer_so_the_other_end_sees_IsCompleted()
    {
        var (local, remote) = DuplexPipePair.Create();
        var connection = SocketTransport.Open(local);

        connection.Abort();

        var result = await remote.Input.ReadAsync().Bounded();
        Assert.That(result.IsCompleted, Is.True);
        Assert.That(result.Buffer.IsEmpty, Is.True);
    }

    [Test]
    public async Task Abort_completes_the_reader_so_the_other_ends_flush_reports_IsCompleted()
    {
        var (local, remote) = DuplexPipePair.Create();
        var connection = SocketTransport.Open(local);

        connection.Abort();

        var flush = await remote.Output.WriteAsync(new byte[] { 1 }).AsTask().Bounded();
        Assert.That(flush.IsCompleted, Is.True);
    }

    [Test]
    public async Task DisposeAsync_completes_both_directions()
    {
        var (local, remote) = DuplexPipePair.Create();
        var connection = SocketTransport.Open(local);

        await connection.DisposeAsync().Bounded();

        Assert.That((await remote.Input.ReadAsync().Bounded()).IsCompleted, Is.True);
        Assert.That((await remote.Output.WriteAsync(new byte[] { 1 }).AsTask().Bounded()).IsCompleted, Is.True);
    }

    [TestCaseSource(nameof(CloseOrders))]
    public async Task Abort_CloseAsync_and_DisposeAsync_are_idempotent_in_any_order(string order)
    {
        var (local, remote) = DuplexPipePair.Create();
        var connection = SocketTransport.Open(local);

        foreach (var step in order.Split(','))
        {
            switch (step)
            {
                case "Close":
                    await connection.CloseAsync().Bounded();
                    break;
                case "Abort":
                    connection.Abort();
                    break;
                case "Dispose":
                    await connection.DisposeAsync().Bounded();
                    break;
            }
        }

        Assert.That((await remote.Input.ReadAsync().Bounded()).IsCompleted, Is.True);
        Assert.That((await remote.Output.WriteAsync(new byte[] { 1 }).AsTask().Bounded()).IsCompleted, Is.True);
    }

    [Test]
    public async Task CloseAsync_with_a_cancelled_token_still_completes_both_directions()
    {
        var (local, remote) = DuplexPipePair.Create();
        var connection = SocketTransport.Open(local);

        try
        {
            await connection.CloseAsync(new CancellationToken(true)).Bounded();
        }
        catch (OperationCanceledException)
        {
            // Allowed by the contract: the graceful part may be abandoned, but resources are released regardless.
        }

        Assert.That((await remote.Input.ReadAsync().Bounded()).IsCompleted, Is.True);
        Assert.That((await remote.Output.WriteAsync(new byte[] { 1 }).AsTask().Bounded()).IsCompleted, Is.True);
    }

    private sealed class EndPointConnection(System.IO.Pipelines.IDuplexPipe pipe) : TransportConnection
    {
        public static readonly System.Net.EndPoint Local = new System.Net.DnsEndPoint("local.example", 1);
        public static readonly System.Net.EndPoint Remote = new System.Net.DnsEndPoint("remote.example", 2);
        public static readonly Exception Error = new IOException("reset");

        public override System.IO.Pipelines.IDuplexPipe Pipe { get; } = pipe;

        public override System.Net.EndPoint? LocalEndPoint => Local;

        public override System.Net.EndPoint? RemoteEndPoint => Remote;

        public override Exception? InputError => Error;

        public override ValueTask CloseAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public override void Abort()
        {
        }
    }
}
