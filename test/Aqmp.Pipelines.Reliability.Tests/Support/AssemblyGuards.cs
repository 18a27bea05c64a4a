// Every test of this project fails when a task faulted during it and nobody observed its exception.
[assembly: Aqmp.Pipelines.Tests.Support.FailOnUnobservedTaskExceptions]
