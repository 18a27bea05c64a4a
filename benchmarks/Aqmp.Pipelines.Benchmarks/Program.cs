// dotnet run -c Release --project benchmarks/Aqmp.Pipelines.Benchmarks -- --filter '*'
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
