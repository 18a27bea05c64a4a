using Aqmp.Pipelines.Cli.Shell;
using Aqmp.Pipelines.Cli.Shell.Editor;
using Aqmp.Pipelines.Cli.Tests.Support;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>The shell's history: in memory, in its file, bounded; and where the file is.</summary>
[TestFixture]
public sealed class LineHistoryTests : TempDirectoryTest
{
    private string HistoryFile => Path.Combine(TempDirectory, "history");

    [Test]
    public void Lines_entered_are_kept_in_the_file_and_a_new_history_on_that_file_recalls_them()
    {
        var first = new LineHistory(HistoryFile);
        first.Add("query-status");
        first.Add("stop");

        var second = new LineHistory(HistoryFile);

        Assert.That(second.Lines, Is.EqualTo(new[] { "query-status", "stop" }));
        Assert.That(File.ReadAllLines(HistoryFile), Is.EqualTo(new[] { "query-status", "stop" }));
    }

    [Test]
    public void A_missing_file_is_an_empty_history_and_is_created_by_the_first_line()
    {
        var history = new LineHistory(HistoryFile);
        Assert.That(history.Lines, Is.Empty);

        history.Add("cont");

        Assert.That(File.ReadAllText(HistoryFile), Is.EqualTo("cont\n"));
    }

    [Test]
    public void At_most_capacity_lines_are_kept_in_memory_and_loaded_from_the_file()
    {
        var history = new LineHistory(HistoryFile, capacity: 3);
        foreach (var line in new[] { "a", "b", "c", "d" })
        {
            history.Add(line);
        }

        Assert.That(history.Lines, Is.EqualTo(new[] { "b", "c", "d" }));
        Assert.That(new LineHistory(HistoryFile, capacity: 3).Lines, Is.EqualTo(new[] { "b", "c", "d" }));
    }

    [Test]
    public void A_file_grown_past_twice_the_capacity_is_cut_back_to_the_newest_lines_when_loaded()
    {
        File.WriteAllLines(HistoryFile, Enumerable.Range(1, 7).Select(i => $"line {i}"));

        var history = new LineHistory(HistoryFile, capacity: 3);

        Assert.That(history.Lines, Is.EqualTo(new[] { "line 5", "line 6", "line 7" }));
        Assert.That(File.ReadAllLines(HistoryFile), Is.EqualTo(new[] { "line 5", "line 6", "line 7" }));
    }

    [Test]
    public void Blank_lines_and_a_repeat_of_the_last_line_are_not_added()
    {
        var history = new LineHistory(HistoryFile);

        history.Add("stop");
        history.Add("stop");
        history.Add("  ");
        history.Add("");
        history.Add("cont");
        history.Add("stop");

        Assert.That(history.Lines, Is.EqualTo(new[] { "stop", "cont", "stop" }));
        Assert.That(File.ReadAllLines(HistoryFile), Is.EqualTo(new[] { "stop", "cont", "stop" }));
    }

    [Test]
    public void A_file_that_cannot_be_written_leaves_the_history_in_memory()
    {
        var history = new LineHistory(Path.Combine(TempDirectory, "no", "such", "dir", "history"));

        history.Add("stop");

        Assert.That(history.Lines, Is.EqualTo(new[] { "stop" }));
    }

    [Test]
    public void The_history_file_is_the_option_then_the_variable_and_an_empty_value_means_none()
    {
        Assert.That(ShellHistoryPath.Resolve("/tmp/x"), Is.EqualTo("/tmp/x"));
        Assert.That(ShellHistoryPath.Resolve(""), Is.Null);
        var fromEnvironment = ShellHistoryPath.Resolve(null);
        var variable = Environment.GetEnvironmentVariable(ShellHistoryPath.Variable);
        Assert.That(
            fromEnvironment,
            variable is null ? Does.EndWith("/" + ShellHistoryPath.DefaultName) : Is.EqualTo(variable.Length == 0 ? null : variable));
    }
}
