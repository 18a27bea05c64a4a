namespace Aqmp.Pipelines.Cli.Tests.Support;

/// <summary>A fixture whose every test gets a fresh temporary directory, deleted after it.</summary>
public abstract class TempDirectoryTest
{
    private string? _directory;

    /// <summary>This test's directory.</summary>
    protected string TempDirectory => _directory ?? throw new InvalidOperationException("no directory outside a test");

    [SetUp]
    public void CreateTempDirectory() => _directory = Directory.CreateTempSubdirectory("aqmp-cli-test-").FullName;

    [TearDown]
    public void DeleteTempDirectory()
    {
        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
            _directory = null;
        }
    }
}
