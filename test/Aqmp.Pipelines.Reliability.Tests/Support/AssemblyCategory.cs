// Every test of this project is in the Reliability category: `dotnet test --filter TestCategory=Reliability`.
[assembly: Category("Reliability")]
[assembly: Parallelizable(ParallelScope.Fixtures)]
