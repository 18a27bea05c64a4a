using System.Text.Json.Nodes;
using Aqmp.Pipelines.Cli.Shell;

namespace Aqmp.Pipelines.Cli.Tests.Shell;

/// <summary>
/// How <see cref="ShellLineParser"/> reads a <c>key=value</c> value (with <see cref="PythonLiteral"/>):
/// as qmp-shell 7.2 reads it where <see cref="QmpShellDifferentialTests"/> compares them against
/// the real qmp-shell, and as aqmp documents where it differs by design.
/// </summary>
[TestFixture]
public sealed class ShellLineParserValueTests
{
    [TestCase("1", "1")]
    [TestCase("-5", "-5")]
    [TestCase("+7", "7", Description = "int('+7')")]
    [TestCase("007", "7", Description = "int('007')")]
    [TestCase("1_000", "1000", Description = "int('1_000')")]
    [TestCase("-0", "0")]
    [TestCase("12345678901234567890", "12345678901234567890", Description = "Python integers have no bound")]
    [TestCase("1__0", "\"1__0\"", Description = "int() refuses a double underscore")]
    [TestCase("_1", "\"_1\"")]
    [TestCase("0x10", "\"0x10\"", Description = "int() without a base reads no hex")]
    [TestCase("true", "true")]
    [TestCase("False", "false")]
    [TestCase("TRUE", "true")]
    [TestCase("abc", "\"abc\"")]
    [TestCase("", "\"\"")]
    [TestCase("[1,\"x\",true]", "[1,\"x\",true]")]
    [TestCase("{\"k\":[1,2]}", "{\"k\":[1,2]}")]
    [TestCase("{'p':None,'q':True,'r':False}", "{\"p\":null,\"q\":true,\"r\":false}", Description = "a Python literal")]
    [TestCase("['a\\'b',\"c\",]", "[\"a'b\",\"c\"]", Description = "escaped quote, trailing comma")]
    [TestCase("[1e3,2.5]", "[1e3,2.5]")]
    [TestCase("[a]", "\"[a]\"", Description = "a name is no literal: the text as a string")]
    [TestCase("{'a':}", "\"{'a':}\"")]
    [TestCase("1.5", "1.5", Description = "by design JSON (qmp-shell: the string)")]
    [TestCase("null", "null", Description = "by design JSON (qmp-shell: the string)")]
    [TestCase("\"a b\"", "\"a b\"", Description = "by design the quotes delimit (qmp-shell keeps them)")]
    [TestCase("'c d'", "\"c d\"", Description = "by design the quotes delimit (qmp-shell keeps them)")]
    public void A_value_is_sent_as_this_JSON(string value, string json)
    {
        var command = ShellLineParser.Parse($"x v={value}");

        var sent = JsonNode.Parse(command.Arguments!.Value.GetProperty("v").GetRawText());
        Assert.That(ShellTranscript.Canonical(sent), Is.EqualTo(ShellTranscript.Canonical(JsonNode.Parse(json))));
    }
}
