// Aqmp.Pipelines build script.
//   dotnet tool restore && dotnet cake --target=Test     (default target)
// Targets: Clean, Build, Test, Bench, Soak, Pack (the core, Qmp and Hosting packages and the aqmp dotnet tool),
// PublishNative (aqmp as one NativeAOT executable for linux-x64 in artifacts/native), ColdStart.
// Test runs every test project and prints one line, "N passed, N failed, N skipped", right after
// the last one (Cake's task table follows it). On CI (CI=true) it also runs the reliability tests
// again under DOTNET_GCgen0size=0x4000000 and a 30 s soak, counted as one more test, and publishes
// the native aqmp (PublishNative) and runs the CLI tests once more against it (AQMP_TOOL).
// Soak runs echo traffic with random faults against the QMP simulator: --duration=SECONDS (default 60).
using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Xml.Linq;

var target = Argument("target", "Test");
var configuration = Argument("configuration", "Release");
var solution = File("./Aqmp.Pipelines.sln");
var artifacts = Directory("./artifacts");
var testResults = artifacts + Directory("test-results");
var soakProject = "./test/Aqmp.Pipelines.Soak/Aqmp.Pipelines.Soak.csproj";
var reliabilityProject = "./test/Aqmp.Pipelines.Reliability.Tests/Aqmp.Pipelines.Reliability.Tests.csproj";
var cliProject = "./src/Aqmp.Pipelines.Cli/Aqmp.Pipelines.Cli.csproj";
var cliTestsProject = "./test/Aqmp.Pipelines.Cli.Tests/Aqmp.Pipelines.Cli.Tests.csproj";
var nativeDirectory = artifacts + Directory("native");
var nativeTool = nativeDirectory + File("aqmp");

// On CI (CI=true) the reliability tests run a second time with DOTNET_GCgen0size set to 64 MiB;
// --gen0size=HEX does the same anywhere, --gen0size= turns it off.
var gen0Size = Argument("gen0size", EnvironmentVariable("CI") == "true" ? "0x4000000" : "");

// Runs the soak; it exits non-zero (and DotNetRun throws) when an execute was lost or anything hung.
void RunSoak(double seconds, string soakConfiguration, bool noBuild)
{
    var arguments = new ProcessArgumentBuilder().Append(FormattableString.Invariant($"--duration={seconds}"));
    if (HasArgument("seed"))
    {
        arguments.Append($"--seed={Argument<int>("seed")}");
    }

    DotNetRun(soakProject, arguments, new DotNetRunSettings { Configuration = soakConfiguration, NoBuild = noBuild });
}

// Opens each package in artifacts/packages and checks what NuGet users expect of it: description,
// tags, the README (declared and inside), the repository (git, this commit; its URL when the git
// remote 'origin' exists), a licence expression when the repository has a LICENSE file, and in each
// of our assemblies an embedded PDB, built deterministically, with SourceLink when there is a remote.
// Returns the problems found; prints what it could not check and why.
List<string> CheckPackages()
{
    string Git(string arguments)
    {
        var exitCode = StartProcess("git", new ProcessSettings { Arguments = arguments, RedirectStandardOutput = true, RedirectStandardError = true }, out var output);
        return exitCode == 0 ? string.Join("\n", output).Trim() : null;
    }

    var commit = Git("rev-parse HEAD");
    var remote = Git("remote get-url origin");
    var hasLicense = GetFiles("./LICENSE*").Any();
    if (remote is null)
    {
        Warning("No git remote 'origin': the packages' repository URL and SourceLink cannot be checked.");
    }

    if (!hasLicense)
    {
        Warning("No LICENSE file: the repository states no licence, so the packages declare none.");
    }

    var problems = new List<string>();
    var packages = GetFiles($"{artifacts}/packages/*.nupkg").ToList();
    if (packages.Count != 4)
    {
        problems.Add($"expected 4 packages in {artifacts}/packages, found {packages.Count}");
    }

    foreach (var package in packages)
    {
        var name = package.GetFilename().ToString();
        void Check(bool condition, string problem)
        {
            if (!condition)
            {
                problems.Add($"{name}: {problem}");
            }
        }

        using var zip = ZipFile.OpenRead(package.FullPath);
        var nuspecEntry = zip.Entries.Single(entry => entry.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !entry.FullName.Contains('/'));
        XElement metadata;
        using (var stream = nuspecEntry.Open())
        {
            metadata = XDocument.Load(stream).Root.Elements().First(element => element.Name.LocalName == "metadata");
        }

        string Field(string field) => metadata.Elements().FirstOrDefault(element => element.Name.LocalName == field)?.Value.Trim();
        XElement Element(string field) => metadata.Elements().FirstOrDefault(element => element.Name.LocalName == field);
        Check(!string.IsNullOrEmpty(Field("description")), "no description");
        Check(!string.IsNullOrEmpty(Field("tags")), "no tags");
        var readme = Field("readme");
        Check(!string.IsNullOrEmpty(readme) && zip.GetEntry(readme) is { Length: > 0 }, $"no README (readme '{readme}')");
        var repository = Element("repository");
        Check(repository?.Attribute("type")?.Value == "git", "no git repository");
        Check(commit is not null && repository?.Attribute("commit")?.Value == commit, $"repository commit '{repository?.Attribute("commit")?.Value}', not HEAD {commit}");
        if (remote is not null)
        {
            Check(!string.IsNullOrEmpty(repository?.Attribute("url")?.Value), "no repository URL");
        }

        if (hasLicense)
        {
            Check(Element("license")?.Attribute("type")?.Value == "expression", "no licence expression");
        }

        var assemblies = zip.Entries.Where(entry => entry.Name.StartsWith("Aqmp.Pipelines", StringComparison.Ordinal) && entry.Name.EndsWith(".dll", StringComparison.Ordinal) || entry.Name == "aqmp.dll").ToList();
        Check(assemblies.Count > 0, "none of our assemblies");
        foreach (var entry in assemblies)
        {
            using var copy = new MemoryStream();
            using (var stream = entry.Open())
            {
                stream.CopyTo(copy);
            }

            copy.Position = 0;
            using var pe = new PEReader(copy);
            var debug = pe.ReadDebugDirectory();
            Check(debug.Any(record => record.Type == DebugDirectoryEntryType.Reproducible), $"{entry.FullName} was not built deterministically");
            var embedded = debug.FirstOrDefault(record => record.Type == DebugDirectoryEntryType.EmbeddedPortablePdb);
            Check(embedded.DataSize > 0, $"{entry.FullName} has no embedded PDB");
            if (embedded.DataSize > 0 && remote is not null)
            {
                using var pdb = pe.ReadEmbeddedPortablePdbDebugDirectoryData(embedded);
                var reader = pdb.GetMetadataReader();
                var sourceLink = new Guid("CC110556-A091-4D38-9FEC-25AB9A351A6A");
                Check(reader.CustomDebugInformation.Any(handle => reader.GetGuid(reader.GetCustomDebugInformation(handle).Kind) == sourceLink), $"{entry.FullName}: no SourceLink in its PDB");
            }
        }

        Information($"{name}: checked ({assemblies.Count} assemblies)");
    }

    return problems;
}

// Publishes aqmp as one native executable (NativeAOT, linux-x64) into artifacts/native. Every
// trimming and AOT warning is an error (TreatWarningsAsErrors reaches ILC as --warnaserror).
void PublishNative()
{
    DotNetPublish(cliProject, new DotNetPublishSettings
    {
        Configuration = configuration,
        Runtime = "linux-x64",
        OutputDirectory = nativeDirectory,
        NoLogo = true,
        Verbosity = DotNetVerbosity.Minimal,
        MSBuildSettings = new DotNetMSBuildSettings()
            .WithProperty("PublishAot", "true")
            .WithProperty("TreatWarningsAsErrors", "true"),
    });
}

Task("Clean")
    .Does(() =>
{
    CleanDirectory(artifacts);
    DotNetClean(solution, new DotNetCleanSettings { Configuration = configuration, Verbosity = DotNetVerbosity.Minimal });
});

Task("Build")
    .Does(() =>
{
    DotNetBuild(solution, new DotNetBuildSettings
    {
        Configuration = configuration,
        Verbosity = DotNetVerbosity.Minimal,
        NoLogo = true,
    });
});

Task("Test")
    .IsDependentOn("Build")
    .Does(() =>
{
    CleanDirectory(testResults);
    var failedProjects = new List<string>();
    void RunTests(FilePath project, string label, IDictionary<string, string> environment)
    {
        try
        {
            DotNetTest(project.FullPath, new DotNetTestSettings
            {
                Configuration = configuration,
                NoBuild = true,
                NoLogo = true,
                ResultsDirectory = testResults,
                Loggers = { $"trx;LogFileName={label}.trx", "console;verbosity=normal" },
                Settings = File("./test/test.runsettings"),
                EnvironmentVariables = environment,
            });
        }
        catch (Exception ex)
        {
            Error($"{label}: {ex.Message}");
            failedProjects.Add(label);
        }
    }

    foreach (var project in GetFiles("./test/**/*.Tests.csproj"))
    {
        RunTests(project, project.GetFilenameWithoutExtension().ToString(), new Dictionary<string, string>());
    }

    if (EnvironmentVariable("CI") == "true")
    {
        // The CLI tests once more against the native executable, so that it cannot drift from the JIT build.
        try
        {
            PublishNative();
            RunTests(File(cliTestsProject), "Aqmp.Pipelines.Cli.Tests.native", new Dictionary<string, string> { ["AQMP_TOOL"] = MakeAbsolute(nativeTool).FullPath });
        }
        catch (Exception ex)
        {
            Error($"PublishNative: {ex.Message}");
            failedProjects.Add("PublishNative");
        }
    }

    if (!string.IsNullOrEmpty(gen0Size))
    {
        // The reliability suite once more with the GC's gen0 budget fixed: its memory bounds must
        // hold whatever the host's cache size makes the collector's default budget.
        Information($"Reliability tests again with DOTNET_GCgen0size={gen0Size}");
        RunTests(File(reliabilityProject), $"Aqmp.Pipelines.Reliability.Tests.gen0size-{gen0Size}", new Dictionary<string, string> { ["DOTNET_GCgen0size"] = gen0Size });
    }

    long passed = 0, failed = 0, skipped = 0;
    foreach (var trx in GetFiles($"{testResults}/*.trx"))
    {
        var counters = XDocument.Load(trx.FullPath).Descendants().First(e => e.Name.LocalName == "Counters");
        long Read(string attribute) => long.Parse(counters.Attribute(attribute)?.Value ?? "0");
        var total = Read("total");
        passed += Read("passed");
        failed += Read("failed") + Read("error") + Read("timeout") + Read("aborted");
        skipped += total - Read("passed") - (Read("failed") + Read("error") + Read("timeout") + Read("aborted"));
    }

    if (failedProjects.Count > 0 && failed == 0)
    {
        // A test host that crashed or timed out leaves no counts: never report that as green.
        failed = failedProjects.Count;
    }

    if (EnvironmentVariable("CI") == "true")
    {
        // The soak counts as one test: a loss or a hang fails it.
        try
        {
            RunSoak(30, configuration, noBuild: true);
            passed++;
        }
        catch (Exception ex)
        {
            Error($"Soak: {ex.Message}");
            failedProjects.Add("Soak");
            failed++;
        }
    }

    var summary = $"{passed} passed, {failed} failed, {skipped} skipped";
    System.IO.File.WriteAllText(testResults + File("summary.txt"), summary + Environment.NewLine);
    Console.WriteLine(summary);
    if (failed > 0 || failedProjects.Count > 0)
    {
        throw new Exception($"Tests failed in: {string.Join(", ", failedProjects)}");
    }
});

Task("Bench")
    .Description("Runs the BenchmarkDotNet suite (Release); --filter=PATTERN narrows it (default '*').")
    .Does(() =>
{
    var filter = Argument("filter", "*");
    DotNetRun("./benchmarks/Aqmp.Pipelines.Benchmarks/Aqmp.Pipelines.Benchmarks.csproj", new ProcessArgumentBuilder().Append("--filter").AppendQuoted(filter), new DotNetRunSettings
    {
        Configuration = "Release",
    });
});

Task("Soak")
    .Description("Echo traffic with random faults against the QMP simulator (Release); --duration=SECONDS (default 60), --seed=N fixes its random choices (faults, payloads).")
    .Does(() =>
{
    RunSoak(Argument("duration", 60.0), "Release", noBuild: false);
});

Task("PublishNative")
    .Description("Publishes aqmp for linux-x64 as one native executable (NativeAOT) into artifacts/native; trimming and AOT warnings fail it.")
    .Does(() => PublishNative());

Task("ColdStart")
    .Description("Times whole aqmp processes, JIT and native (--help; execute query-status against aqmp serve and QEMU): benchmarks/cold-start.sh; --runs=N (default 30).")
    .IsDependentOn("Build")
    .IsDependentOn("PublishNative")
    .Does(() =>
{
    var exitCode = StartProcess("bash", new ProcessSettings { Arguments = new ProcessArgumentBuilder().Append("benchmarks/cold-start.sh").Append(Argument("runs", 30).ToString()) });
    if (exitCode != 0)
    {
        throw new Exception($"benchmarks/cold-start.sh exited with {exitCode}");
    }
});

Task("Pack")
    .Description("Packs the libraries' packages (core, Qmp, Hosting) and the aqmp dotnet tool into artifacts/packages, then opens each and checks its metadata (CheckPackages).")
    .IsDependentOn("Build")
    .Does(() =>
{
    foreach (var project in new[] { "Aqmp.Pipelines", "Aqmp.Pipelines.Qmp", "Aqmp.Pipelines.Hosting", "Aqmp.Pipelines.Cli" })
    {
        DotNetPack($"./src/{project}/{project}.csproj", new DotNetPackSettings
        {
            Configuration = configuration,
            NoBuild = true,
            NoLogo = true,
            OutputDirectory = artifacts + Directory("packages"),
        });
    }

    var problems = CheckPackages();
    if (problems.Count > 0)
    {
        throw new Exception("Packages lack what NuGet users expect:" + Environment.NewLine + string.Join(Environment.NewLine, problems));
    }
});

RunTarget(target);
