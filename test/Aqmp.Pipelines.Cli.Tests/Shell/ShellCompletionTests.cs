using System.Text.Json;
using Aqmp.Pipelines.Cli.Shell;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>What Tab completes in a shell line: command names first, then the command's argument names.</summary>
[TestFixture]
public sealed class ShellCompletionTests
{
    private const string Schema = """
        [
          {"name": "blockdev-add", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
          {"name": "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "2"},
          {"name": "0", "meta-type": "object", "members": []},
          {"name": "1", "meta-type": "object", "members": [{"name": "node-name", "type": "str"}, {"name": "driver", "type": "3"}, {"name": "discard", "type": "4"}],
           "tag": "driver", "variants": [{"case": "null-co", "type": "5"}, {"case": "file", "type": "6"}, {"case": "nbd", "type": "7"}]},
          {"name": "5", "meta-type": "object", "members": [{"name": "size", "type": "int"}, {"name": "detect-zeroes", "type": "bool"}]},
          {"name": "6", "meta-type": "object", "members": [{"name": "filename", "type": "str"}, {"name": "size", "type": "int"}]},
          {"name": "str", "meta-type": "builtin", "json-type": "string"},
          {"name": "SHUTDOWN", "meta-type": "event", "arg-type": "1"}
        ]
        """;

    [Test]
    public void The_first_word_completes_to_command_names_followed_by_a_space()
    {
        var completion = Create();

        var result = completion.Complete("  query-s", 9);

        Assert.That((result.Start, result.Candidates, result.Suffix), Is.EqualTo((2, new[] { "query-stats", "query-status" }, " ")));
    }

    [Test]
    public void An_empty_line_offers_every_command()
    {
        Assert.That(Create().Complete("", 0).Candidates, Is.EqualTo(new[] { "blockdev-add", "query-stats", "query-status" }));
    }

    [Test]
    public void A_later_word_completes_to_the_commands_argument_names_from_the_schema_with_an_equals_sign()
    {
        var completion = Create();

        var result = completion.Complete("blockdev-add node-name=n0 d", 27);

        Assert.That((result.Start, result.Candidates, result.Suffix), Is.EqualTo((26, new[] { "detect-zeroes=", "discard=", "driver=" }, "")));
    }

    [Test]
    public void A_union_commands_argument_names_include_every_branchs_members_once()
    {
        var result = Create().Complete("blockdev-add ", 13);

        Assert.That(result.Candidates, Is.EqualTo(new[] { "detect-zeroes=", "discard=", "driver=", "filename=", "node-name=", "size=" }));
    }

    [Test]
    public void The_word_at_the_cursor_is_completed_even_with_text_after_it()
    {
        var result = Create().Complete("query-st x=1", 8);

        Assert.That(result.Candidates, Is.EqualTo(new[] { "query-stats", "query-status" }));
    }

    [Test]
    public void Nothing_completes_in_a_value_in_raw_JSON_for_an_unknown_command_or_for_a_command_without_arguments()
    {
        var completion = Create();

        Assert.That(completion.Complete("blockdev-add driver=n", 21).Candidates, Is.Empty);
        Assert.That(completion.Complete("{\"exec", 6).Candidates, Is.Empty);
        Assert.That(completion.Complete("nosuch d", 8).Candidates, Is.Empty);
        Assert.That(completion.Complete("query-status d", 14).Candidates, Is.Empty);
    }

    [Test]
    public void Before_the_server_has_answered_nothing_completes()
    {
        Assert.That(new ShellCompletion().Complete("query", 5).Candidates, Is.Empty);
    }

    private static ShellCompletion Create()
    {
        var completion = new ShellCompletion();
        completion.SetCommands(["query-status", "blockdev-add", "query-stats", "query-status"]);
        using var schema = JsonDocument.Parse(Schema);
        completion.SetArgumentsFromSchema(schema.RootElement);
        return completion;
    }
}
