using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>
/// A connected client/server pair of <see cref="TransportConnection"/>s made by
/// <see cref="SocketListener"/> and <see cref="SocketTransport"/>. Disposing aborts both and stops the listener.
/// </summary>
internal sealed class TransportPair : IAsyncDisposable
{
    private TransportPair(TransportKind kind, SocketListener listener, TransportConnection client, TransportConnection server)
    {
        Kind = kind;
        Listener = listener;
        Client = client;
        Server = server;
    }

    public TransportKind Kind { get; }

    public SocketListener Listener { get; }

    public TransportConnection Client { get; }

    public TransportConnection Server { get; }

    /// <summary>Binds a listener, connects a client to it and accepts the server side.</summary>
    public static async Task<TransportPair> CreateAsync(TransportKind kind, TransportOptions? clientOptions = null, TransportOptions? serverOptions = null)
    {
        kind.IgnoreIfUnavailable();
        var listener = await SocketListener.BindAsync(kind.BindEndPoint()).Bounded();
        TransportConnection? client = null;
        var accept = listener.AcceptAsync(kind.ServerTls(), serverOptions).AsTask();
        try
        {
            client = await SocketTransport.ConnectAsync(listener.LocalEndPoint, kind.ClientTls(), clientOptions).Bounded();
            var server = await accept.Bounded();
            return new TransportPair(kind, listener, client, server);
        }
        catch
        {
            client?.Abort();
            listener.Dispose();
            _ = accept.ContinueWith(t => t.Result.Abort(), TaskContinuationOptions.OnlyOnRanToCompletion);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Server.DisposeAsync();
        Listener.Dispose();
    }
}
