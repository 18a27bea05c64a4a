using System.Buffers.Text;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace Aqmp.Pipelines.Reliability.Tests.Support;

/// <summary>
/// A QMP server (after the negotiation) that floods a fixed number of events as fast as its socket
/// takes them — <c>{"event":"FLOOD","data":{"seq":N,"pad":"…"},…}</c>, N counting from 0 — while it
/// answers every command it reads with an empty return, interleaving the replies with the events.
/// It reuses one 64 KiB buffer. It ends when the client closes its side, and then closes too.
/// </summary>
internal sealed class HostileEventFlood
{
    /// <summary>The name of every flooded event.</summary>
    public const string EventName = "FLOOD";

    private static readonly byte[] EventHead = Encoding.UTF8.GetBytes("""{"event":"FLOOD","data":{"seq":""");
    private static readonly byte[] EventTail = Encoding.UTF8.GetBytes(",\"pad\":\"" + new string('p', 64) + "\"},\"timestamp\":{\"seconds\":1700000000,\"microseconds\":0}}\n");

    private readonly HostileConnection _peer;
    private readonly int _events;
    private readonly Channel<string> _replies = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource _flooded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _bytesSent;
    private int _commands;

    private HostileEventFlood(HostileConnection peer, int events)
    {
        _peer = peer;
        _events = events;
    }

    /// <summary>Completes once every event has been handed to the socket.</summary>
    public Task Flooded => _flooded.Task;

    /// <summary>Completes when the client has closed and this end is closed too.</summary>
    public Task Completion { get; private set; } = Task.CompletedTask;

    /// <summary>Bytes written so far, events and replies.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Commands answered so far.</summary>
    public int Commands => Volatile.Read(ref _commands);

    /// <summary>Starts flooding <paramref name="events"/> events on a negotiated connection.</summary>
    public static HostileEventFlood Start(HostileConnection peer, int events)
    {
        var flood = new HostileEventFlood(peer, events);
        flood.Completion = flood.RunAsync();
        return flood;
    }

    private async Task RunAsync()
    {
        try
        {
            await Task.WhenAll(Task.Run(ReadCommandsAsync), Task.Run(WriteAsync)).ConfigureAwait(false);
        }
        finally
        {
            _peer.Dispose();
        }
    }

    private async Task ReadCommandsAsync()
    {
        try
        {
            while (true)
            {
                var (_, id) = await _peer.ReadCommandAsync().ConfigureAwait(false);
                Interlocked.Increment(ref _commands);
                _replies.Writer.TryWrite(HostileConnection.ReturnJson(id) + "\n");
            }
        }
        catch (Exception ex) when (ex is EndOfStreamException or SocketException)
        {
            // The client closed: the flood is over.
        }
        finally
        {
            _replies.Writer.TryComplete();
        }
    }

    private async Task WriteAsync()
    {
        var buffer = new byte[64 * 1024];
        var socket = _peer.Socket;
        var next = 0;
        while (true)
        {
            var length = 0;
            while (_replies.Reader.TryRead(out var reply))
            {
                if (length + (reply.Length * 3) > buffer.Length)
                {
                    await SendAsync(socket, buffer, length).ConfigureAwait(false);
                    length = 0;
                }

                length += Encoding.UTF8.GetBytes(reply, buffer.AsSpan(length));
            }

            while (next < _events && length < buffer.Length - 256)
            {
                EventHead.CopyTo(buffer.AsSpan(length));
                length += EventHead.Length;
                Utf8Formatter.TryFormat(next, buffer.AsSpan(length), out var digits);
                length += digits;
                EventTail.CopyTo(buffer.AsSpan(length));
                length += EventTail.Length;
                next++;
            }

            if (length > 0)
            {
                await SendAsync(socket, buffer, length).ConfigureAwait(false);
                continue;
            }

            _flooded.TrySetResult();
            if (!await _replies.Reader.WaitToReadAsync().ConfigureAwait(false))
            {
                return;
            }
        }
    }

    private async Task SendAsync(Socket socket, byte[] buffer, int length)
    {
        var sent = 0;
        while (sent < length)
        {
            sent += await socket.SendAsync(buffer.AsMemory(sent, length - sent), SocketFlags.None).ConfigureAwait(false);
        }

        Interlocked.Add(ref _bytesSent, length);
    }
}
