using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Qmp.Simulator;

namespace Aqmp.Pipelines.Qmp.Tests.Simulator;

/// <summary>
/// The argument check against QEMU 7.2's schema, on its own: its cost on the common path, and
/// where it departs from QEMU because the introspected schema says less than QEMU knows. What
/// QEMU answers is specified by the differential scripts.
/// </summary>
public class QemuArgumentCheckTests
{
    private static QemuSchema Schema => QemuSchema.Qemu72;

    private static string ArgumentType(string command) => Schema.Command(command)!.ArgumentType;

    [Test]
    public void The_schema_is_loaded_once_and_knows_QEMU_7_2s_216_commands()
    {
        Assert.That(QemuSchema.Qemu72, Is.SameAs(Schema));
        Assert.That(Schema.CommandsAsListed, Has.Count.EqualTo(216));
        Assert.That(Schema.Command("yank"), Is.EqualTo(new QemuSchemaCommand("yank", "221", AllowsOutOfBand: true)));
        Assert.That(Schema.Command("x-nope"), Is.Null);
    }

    [Test]
    public void Checking_the_arguments_of_a_command_without_any_allocates_nothing()
    {
        var argumentType = ArgumentType("query-status");
        var empty = QmpJson.Parse("{}");
        Assert.That(CheckBoth(argumentType, empty), Is.Null);
        var before = GC.GetAllocatedBytesForCurrentThread();

        var refusal = CheckBoth(argumentType, empty);

        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
        Assert.That(refusal, Is.Null);
    }

    private static string? CheckBoth(string argumentType, System.Text.Json.JsonElement empty)
        => QemuArgumentCheck.Refusal(Schema, argumentType, null) ?? QemuArgumentCheck.Refusal(Schema, argumentType, empty);

    [TestCase("9223372036854775807", null)]
    [TestCase("-9223372036854775808", null)]
    [TestCase("9223372036854775808", "Invalid parameter type for 'value', expected: integer")]
    [TestCase("1.0", "Invalid parameter type for 'value', expected: integer")]
    public void An_integer_is_taken_in_the_signed_64_bit_range(string value, string? refusal)
    {
        Assert.That(QemuArgumentCheck.Refusal(Schema, ArgumentType("balloon"), QmpJson.Parse($$"""{"value":{{value}}}""")), Is.EqualTo(refusal));
    }

    [Test]
    public void Of_several_unexpected_members_the_first_given_is_named()
    {
        var refusal = QemuArgumentCheck.Refusal(Schema, ArgumentType("stop"), QmpJson.Parse("""{"b":1,"a":2}"""));

        Assert.That(refusal, Is.EqualTo("Parameter 'b' is unexpected"));
    }

    [Test]
    public void A_variant_member_of_a_flat_union_is_expected_only_with_its_tag()
    {
        var type = ArgumentType("blockdev-add");

        Assert.That(QemuArgumentCheck.Refusal(Schema, type, QmpJson.Parse("""{"driver":"file","node-name":"n","filename":"f"}""")), Is.Null);
        Assert.That(QemuArgumentCheck.Refusal(Schema, type, QmpJson.Parse("""{"driver":"null-co","node-name":"n","filename":"f"}""")), Is.EqualTo("Parameter 'filename' is unexpected"));
    }
}
