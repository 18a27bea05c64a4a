// Starts an echo server and a client on loopback and prints what they exchange.
// Usage: dotnet run --project src/Aqmp.Pipelines.Samples.Echo [-- tcp|unix]
using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Samples.Echo;
using Aqmp.Pipelines.Transports;

var transport = args.FirstOrDefault() ?? "tcp";
EndPoint listenOn = transport switch
{
    "tcp" => new IPEndPoint(IPAddress.Loopback, 0),
    "unix" => new UnixDomainSocketEndPoint(Path.Combine(Path.GetTempPath(), $"aqmp-echo-{Environment.ProcessId}.sock")),
    _ => throw new ArgumentException($"unknown transport '{transport}': use tcp or unix"),
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
