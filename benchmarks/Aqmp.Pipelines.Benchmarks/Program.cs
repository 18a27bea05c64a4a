// dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --filter '*'
// One case in a loop, for a profiler (perf record, dotnet-trace):
// dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --loop EndToEndStreamBenchmarks.RawSend_SessionReceive Transport=Unix LineLength=64 [--seconds=10] [--warmup=2]
// Every row of one class, one parameter set, interleaved in one process (median ratio to the baseline):
// dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --interleave LengthFieldFramingBenchmarks PayloadLength=64 SegmentSize=0 [--rounds=200]
// Managed heap per idle server session (clients in a child process; raise ulimit -n above N first):
// dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --idle-sessions 10000
// Connections per second (one line each, then closed): PipeProtocolServer against a raw accept loop:
// dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --accept-rate 5000 [ROUNDS]
// A metrics listener attached vs none, session -> server session over Unix, interleaved rounds:
// dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --metrics-overhead [ROUNDS] [MIB-PER-STREAM]
// Two builds compared, interleaved (A, B, B, A, ...): benchmarks/ab.sh --help
using Aqmp.Pipelines.Benchmarks;
using BenchmarkDotNet.Running;

if (args is ["--loop", ..])
{
    return await BenchmarkLoop.RunAsync(args[1..]);
}

if (args is ["--idle-sessions", ..])
{
    return await Aqmp.Pipelines.Benchmarks.Server.IdleSessionsBenchmark.RunAsync(args[1..]);
}

if (args is ["--accept-rate", ..])
{
    return await Aqmp.Pipelines.Benchmarks.Server.AcceptRateBenchmark.RunAsync(args[1..]);
}

if (args is ["--metrics-overhead", ..])
{
    return await Aqmp.Pipelines.Benchmarks.Server.ServerMetricsOverheadBenchmark.RunAsync(args[1..]);
}

if (args is ["--idle-clients", ..])
{
    return await Aqmp.Pipelines.Benchmarks.Server.IdleSessionsBenchmark.RunClientProcessAsync(args[1..]);
}

if (args is ["--interleave", ..])
{
    return BenchmarkInterleave.Run(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
