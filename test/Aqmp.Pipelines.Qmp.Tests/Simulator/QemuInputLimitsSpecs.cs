using System.Net.Sockets;
using System.Text;
using Aqmp.Pipelines.Qmp.Simulator;
using Aqmp.Pipelines.Qmp.Tests.Support;

namespace Aqmp.Pipelines.Qmp.Tests.Simulator;

/// <summary>
/// QEMU's limits on one JSON value (2 Mi tokens, 64 MiB of tokens) as the simulator applies them.
/// QEMU's monitor reads one byte per main-loop turn, so these inputs took it 27 s (2 MB) and 17 minutes
/// (68 MB) here: too long for the differential run, so each expected answer here was
/// recorded from <c>qemu-system-x86_64</c> 7.2 (Debian 12) fed the same bytes over a Unix socket.
/// </summary>
[NonParallelizable]
public class QemuInputLimitsSpecs
{
    private const string Negotiate = """{"execute":"qmp_capabilities"}""";

    [Test]
    public async Task A_value_of_more_than_2_Mi_tokens_is_refused_with_QEMUs_token_count_error_and_the_rest_is_read_on()
    {
        // [1,1,…,1] of 2^20 + 1 elements: 2^21 + 2 tokens.
        var input = Encoding.ASCII.GetBytes("[" + string.Concat(Enumerable.Repeat("1,", 1 << 20)) + "1]" + Negotiate);

        var answers = await AnswersAsync(input, QmpSimulatorOptions.Default);

        Assert.That(answers, Is.EqualTo(new[]
        {
            """{"error": {"class": "GenericError", "desc": "JSON token count limit exceeded"}}""",
            """{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}""",
            """{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}""",
            """{"return": {}}""",
        }));
    }

    [Test]
    public async Task A_value_of_more_than_64_MiB_of_tokens_is_refused_with_QEMUs_token_size_error_and_the_rest_is_read_on()
    {
        // ["a…a","a…a",…,"x"]: 65 strings of 1 MiB, the 64th crossing the limit; the lexer then
        // goes on from the comma after it, as QEMU's does.
        var input = SixtyFiveMebibyteStrings();

        var answers = await AnswersAsync(input, QmpSimulatorOptions.Default);

        Assert.That(answers, Is.EqualTo(new[]
        {
            """{"error": {"class": "GenericError", "desc": "JSON token size limit exceeded"}}""",
            """{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}""",
            """{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}""",
            """{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}""",
            """{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}""",
            """{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}""",
            """{"return": {}}""",
        }));
    }

    [Test]
    public async Task A_single_token_longer_than_MaximumMessageLength_ends_the_session_and_the_next_client_is_served()
    {
        // QEMU would buffer an unfinished token without a bound; the simulator stops at its limit.
        var options = new QmpSimulatorOptions { MaximumMessageLength = 1024 * 1024 };
        var input = Encoding.ASCII.GetBytes("\"" + new string('a', 3 * 1024 * 1024));

        await using var fixture = await SimulatorFixture.StartAsync(options);
        var answers = await AnswersAsync(fixture, input);

        Assert.That(answers, Is.Empty, "nothing is answered: the connection is closed");
        await using var next = await fixture.ConnectAsync();
        Assert.That((await next.ExecuteAsync("query-status").Bounded()).GetProperty("running").GetBoolean(), Is.True);
    }

    [Test]
    public void The_default_limit_on_one_value_lets_QEMUs_own_64_MiB_limit_answer_first()
        => Assert.That(QmpSimulatorOptions.Default.MaximumMessageLength, Is.GreaterThan(64 * 1024 * 1024));

    private static byte[] SixtyFiveMebibyteStrings()
    {
        var text = new StringBuilder("[");
        var mebibyte = new string('a', 1024 * 1024);
        for (var i = 0; i < 65; i++)
        {
            text.Append('"').Append(mebibyte).Append("\",");
        }

        return Encoding.ASCII.GetBytes(text.Append("\"x\"]").Append(Negotiate).ToString());
    }

    private static async Task<List<string>> AnswersAsync(byte[] input, QmpSimulatorOptions options)
    {
        await using var fixture = await SimulatorFixture.StartAsync(options);
        return await AnswersAsync(fixture, input);
    }

    /// <summary>Sends <paramref name="input"/> after the greeting and returns every line answered until the <c>qmp_capabilities</c> reply or the end of the connection.</summary>
    private static async Task<List<string>> AnswersAsync(SimulatorFixture fixture, byte[] input)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(fixture.Path)).Bounded();
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await reader.ReadLineAsync(bound.Token);
        var sending = Task.Run(async () =>
        {
            try
            {
                await socket.SendAsync(input, SocketFlags.None, bound.Token);
            }
            catch (SocketException)
            {
                // The simulator closed the connection before taking everything.
            }
        });

        var answers = new List<string>();
        try
        {
            while (await reader.ReadLineAsync(bound.Token) is { } line)
            {
                answers.Add(line);
                if (line.StartsWith("{\"return\"", StringComparison.Ordinal))
                {
                    break;
                }
            }
        }
        catch (IOException)
        {
            // A reset after the simulator closed.
        }

        await sending.WaitAsync(bound.Token);
        return answers;
    }
}
