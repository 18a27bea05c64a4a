// Starts an echo server and a client on loopback and prints what they exchange; `many [N]` runs
// a PipeProtocolServer on TCP and Unix with N clients at once (100 by default).
// Usage: dotnet run --project src/Aqmp.Pipelines.Samples.Echo [-- tcp|unix|many [N]]
using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Samples.Echo;
using Aqmp.Pipelines.Transports;

var transport = args.FirstOrDefault() ?? "tcp";
if (transport == "many")
{
    using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
    await ManyClients.RunAsync(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 100, limit.Token);
    return;
}

EndPoint listenOn = transport switch
{
    "tcp" => new IPEndPoint(IPAddress.Loopback, 0),
    "unix" => new UnixDomainSocketEndPoint(Path.Combine(Path.GetTempPath(), $"aqmp-echo-{Environment.ProcessId}.sock")),
    _ => throw new ArgumentException($"unknown transport '{transport}': use tcp, unix or many"),
};

using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
await using var server = new EchoServer();
await using var client = new EchoClient();

var endPoint = await server.StartServerAsync(listenOn, cancellationToken: timeout.Token);
Console.WriteLine($"server: listening on {AddressParser.Format(endPoint)}");
var accepted = server.AcceptAsync(timeout.Token);
await client.ConnectAsync(endPoint, cancellationToken: timeout.Token);
await accepted;
Console.WriteLine($"connected: {client} <-> {server}");

foreach (var line in new[] { "hello", "System.IO.Pipelines", "goodbye" })
{
    Console.WriteLine($"client --> {line}");
    Console.WriteLine($"client <-- {await client.RequestAsync(line, timeout.Token)}");
}

await client.DisconnectAsync(timeout.Token);
Console.WriteLine($"client: disconnected, {client}");
try
{
    await server.DisconnectAsync(timeout.Token);
}
catch (EndOfStreamException ex)
{
    Console.WriteLine($"server: session ended by the peer ({ex.Message}), {server}");
}
