using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;
using Aqmp.Pipelines.Reliability.Tests.Support;

namespace Aqmp.Pipelines.Qmp.Tests.Messages;

/// <summary>
/// <see cref="QmpMessage.Parse(string)"/> over thousands of generated JSON objects: it either
/// refuses one with a <see cref="QmpParseException"/> that keeps the object's id, or returns a
/// message on which no accessor fails. The objects are drawn from QMP's member names and from the
/// right shapes for them often enough that every kind of message is accepted many times.
/// </summary>
public class QmpMessagePropertyTests
{
    private const int Objects = 6_000;
    private const int FixedSeed = 7_2_0;
    private const int MinimumPerOutcome = 200;
    private const int MaximumDepth = 4;

    private static readonly string[] MemberPool =
    [
        "QMP", "execute", "exec-oob", "arguments", "id", "return", "error", "event", "data", "timestamp",
        "class", "desc", "version", "capabilities", "qemu", "major", "minor", "micro", "package",
    ];

    private static readonly string[] Strings = ["", "query-status", "STOP", "oob", "GenericError", "ünïcödé", "日本語", "emoji 😀", "quote \" and \\ backslash", "new\nline", "tab\t", "\u0001", "execute"];

    private static readonly string[] Numbers = ["0", "-0", "1", "-1", "7", "2147483647", "2147483648", "-2147483648", "-2147483649", "9223372036854775808", "123456789012345678901234567890", "1e400", "-1E-400", "0.5", "2.0", "1e2", "3.14159"];

    [Test]
    public void Parse_of_any_JSON_object_either_refuses_it_keeping_its_id_or_returns_a_message_whose_every_accessor_works()
    {
        var random = FuzzSeed.Next(out var seed, FixedSeed);
        var replay = FuzzSeed.Replay(seed);
        var generator = new Generator(random);
        var accepted = Enum.GetValues<QmpMessageKind>().ToDictionary(kind => kind, _ => 0);
        var refused = 0;

        for (var i = 0; i < Objects; i++)
        {
            var (json, idText) = generator.TopLevelObject();
            QmpMessage message;
            try
            {
                message = QmpMessage.Parse(json);
            }
            catch (QmpParseException ex)
            {
                refused++;
                if (idText is not null)
                {
                    Assert.That(ex.Id?.GetRawText(), Is.EqualTo(idText), $"{replay}: the refusal of {json} ({ex.Reason}) keeps its id");
                }

                continue;
            }
            catch (Exception ex)
            {
                Assert.Fail($"{replay}: Parse let {ex.GetType().Name} escape for {json}: {ex}");
                return;
            }

            accepted[message.Kind]++;
            AssertEveryAccessorWorks(message, $"{replay}: {json}");
        }

        TestContext.Out.WriteLine($"refused {refused}, accepted {string.Join(", ", accepted.Select(a => $"{a.Key} {a.Value}"))}");
        Assert.That(refused, Is.GreaterThanOrEqualTo(MinimumPerOutcome), $"{replay}: refusals generated");
        foreach (var (kind, count) in accepted)
        {
            Assert.That(count, Is.GreaterThanOrEqualTo(MinimumPerOutcome), $"{replay}: accepted {kind} messages generated");
        }
    }

    /// <summary>Every accessor of an accepted message, and the kind-specific ones non-null.</summary>
    private static void AssertEveryAccessorWorks(QmpMessage message, string context)
    {
        Assert.That(() =>
        {
            _ = message.Root;
            _ = message.Id;
            _ = message.IsOutOfBand;
            _ = message.Arguments;
            _ = message.ReturnValue;
            var commandName = message.CommandName;
            var errorClass = message.ErrorClass;
            var errorDescription = message.ErrorDescription;
            var eventName = message.EventName;
            switch (message.Kind)
            {
                case QmpMessageKind.Greeting:
                    _ = message.ToGreeting();
                    break;
                case QmpMessageKind.Command:
                    Assert.That(commandName, Is.Not.Null, context);
                    break;
                case QmpMessageKind.Error:
                    Assert.That(errorClass, Is.Not.Null, context);
                    Assert.That(errorDescription, Is.Not.Null, context);
                    break;
                case QmpMessageKind.Event:
                    Assert.That(eventName, Is.Not.Null, context);
                    Assert.That(message.ToEvent().Name, Is.EqualTo(eventName), context);
                    break;
            }

            var text = message.ToString();
            var buffer = new ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                message.WriteTo(writer);
            }

            Assert.That(QmpMessage.Parse(buffer.WrittenSpan).Kind, Is.EqualTo(message.Kind), context);
            Assert.That(QmpMessage.Parse(text).Kind, Is.EqualTo(message.Kind), context);
            Assert.That(message.WithId(QmpJson.Number(1)).Kind, Is.EqualTo(message.Kind), context);
        }, Throws.Nothing, context);
    }

    /// <summary>Random JSON objects without duplicate member names, as text.</summary>
    private sealed class Generator(Random random)
    {
        /// <summary>An object shaped like one kind of message, or like none, and the raw text of its <c>id</c> member if it has one.</summary>
        public (string Json, string? IdText) TopLevelObject()
        {
            string[] template = random.Next(6) switch
            {
                0 => ["QMP"],
                1 => random.Next(2) == 0 ? ["execute", "arguments", "id"] : ["exec-oob", "arguments", "id"],
                2 => ["return", "id"],
                3 => ["error", "id"],
                4 => ["event", "data", "timestamp"],
                _ => [],
            };

            var names = new List<string>();
            foreach (var name in template)
            {
                if (name is "QMP" or "execute" or "exec-oob" or "return" or "error" or "event" || random.Next(3) > 0)
                {
                    names.Add(name);
                }
            }

            // Mostly none, sometimes a few more members (which may break the template).
            var extra = random.Next(10) < 7 ? 0 : random.Next(1, 4);
            for (var i = 0; i < extra; i++)
            {
                var name = random.Next(4) == 0 ? RandomName() : MemberPool[random.Next(MemberPool.Length)];
                if (!names.Contains(name))
                {
                    names.Insert(random.Next(names.Count + 1), name);
                }
            }

            Shuffle(names);
            var members = names.Select(name => (name, Value: random.Next(10) < 8 ? RightShape(name, 1) : Value(1))).ToList();
            var id = members.FirstOrDefault(m => m.name == "id");
            return (Object(members), id.name is null ? null : id.Value);
        }

        /// <summary>The value a member of that name has in a valid message (any value for an unknown name).</summary>
        private string RightShape(string name, int depth) => name switch
        {
            "QMP" => ShapedObject(["version", "capabilities"], depth),
            "version" => ShapedObject(random.Next(2) == 0 ? ["qemu", "package"] : ["qemu"], depth),
            "qemu" => ShapedObject(["major", "minor", "micro"], depth),
            "major" or "minor" or "micro" => random.Next(4) == 0 ? Numbers[random.Next(Numbers.Length)] : random.Next(-5, 100).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "capabilities" => "[" + string.Join(",", Enumerable.Range(0, random.Next(3)).Select(_ => String())) + "]",
            "execute" or "exec-oob" or "event" or "class" or "desc" or "package" => String(),
            "arguments" or "data" => Object(RandomMembers(depth + 1)),
            "error" => ShapedObject(["class", "desc"], depth),
            "timestamp" => Object([("seconds", Numbers[random.Next(Numbers.Length)]), ("microseconds", Numbers[random.Next(Numbers.Length)])]),
            _ => Value(depth),
        };

        /// <summary>An object with those members, each right-shaped mostly, and now and then one missing or one random member added.</summary>
        private string ShapedObject(string[] names, int depth)
        {
            var members = names
                .Where(_ => random.Next(20) > 0)
                .Select(name => (name, random.Next(20) > 0 ? RightShape(name, depth + 1) : Value(depth + 1)))
                .ToList();
            if (random.Next(6) == 0)
            {
                var name = RandomName();
                if (members.All(m => m.name != name))
                {
                    members.Add((name, Value(depth + 1)));
                }
            }

            return Object(members);
        }

        /// <summary>Any JSON value; containers only above <see cref="MaximumDepth"/>.</summary>
        private string Value(int depth)
        {
            var choice = random.Next(depth >= MaximumDepth ? 6 : 8);
            return choice switch
            {
                0 => "null",
                1 => random.Next(2) == 0 ? "true" : "false",
                2 => random.Next(int.MinValue, int.MaxValue).ToString(System.Globalization.CultureInfo.InvariantCulture),
                3 => Numbers[random.Next(Numbers.Length)],
                4 or 5 => String(),
                6 => "[" + string.Join(",", Enumerable.Range(0, random.Next(4)).Select(_ => Value(depth + 1))) + "]",
                _ => Object(RandomMembers(depth + 1)),
            };
        }

        private List<(string Name, string Value)> RandomMembers(int depth)
        {
            var members = new List<(string Name, string Value)>();
            for (var i = random.Next(4); i > 0; i--)
            {
                var name = random.Next(2) == 0 ? MemberPool[random.Next(MemberPool.Length)] : RandomName();
                if (members.All(m => m.Name != name))
                {
                    members.Add((name, Value(depth)));
                }
            }

            return members;
        }

        private string RandomName() => random.Next(3) switch
        {
            0 => "x-" + random.Next(1000).ToString(System.Globalization.CultureInfo.InvariantCulture),
            1 => Strings[random.Next(Strings.Length)],
            _ => new string((char)random.Next('a', 'z' + 1), random.Next(1, 4)),
        };

        /// <summary>A JSON string, its non-ASCII text escaped or raw at random.</summary>
        private string String()
        {
            var encoder = random.Next(2) == 0 ? JavaScriptEncoder.Default : JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
            return "\"" + JsonEncodedText.Encode(Strings[random.Next(Strings.Length)], encoder) + "\"";
        }

        private string Object(IEnumerable<(string Name, string Value)> members)
        {
            var separator = random.Next(2) == 0 ? "," : ", ";
            var text = new StringBuilder("{");
            foreach (var (name, value) in members)
            {
                if (text.Length > 1)
                {
                    text.Append(separator);
                }

                text.Append('"').Append(JsonEncodedText.Encode(name, JavaScriptEncoder.UnsafeRelaxedJsonEscaping)).Append("\": ").Append(value);
            }

            return text.Append('}').ToString();
        }

        private void Shuffle(List<string> names)
        {
            for (var i = names.Count - 1; i > 0; i--)
            {
                var j = random.Next(i + 1);
                (names[i], names[j]) = (names[j], names[i]);
            }
        }
    }
}
