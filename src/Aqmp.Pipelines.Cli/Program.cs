// aqmp: a QMP shell, command runner, event watcher and simulator.
using System.Reflection;
using Aqmp.Pipelines.Cli;
using Aqmp.Pipelines.Cli.Commands;

return await AqmpTool.RunAsync(args, Console.In, Console.Out, Console.Error, interactive: !Console.IsInputRedirected && !Console.IsOutputRedirected);
