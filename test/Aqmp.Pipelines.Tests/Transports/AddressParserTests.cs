using System.Net;
using System.Net.Sockets;
using Aqmp.Pipelines.Transports;

namespace Aqmp.Pipelines.Tests.Transports;

public class AddressParserTests
{
    [TestCase("unix:/run/qemu.sock", "/run/qemu.sock")]
    [TestCase("unix:relative.sock", "relative.sock")]
    [TestCase("/run/qemu.sock", "/run/qemu.sock")]
    [TestCase("./rel/qmp.sock", "./rel/qmp.sock")]
    [TestCase("rel/qmp.sock", "rel/qmp.sock")]
    public void Parse_reads_a_unix_prefix_or_any_text_with_a_slash_as_a_unix_socket_path(string address, string path)
    {
        var endPoint = AddressParser.Parse(address);

        Assert.That(endPoint, Is.TypeOf<UnixDomainSocketEndPoint>());
        Assert.That(endPoint.ToString(), Is.EqualTo(path));
    }

    [Test]
    public void Parse_reads_a_unix_path_containing_colons_as_a_path()
    {
        var endPoint = AddressParser.Parse("/tmp/a:b:80");

        Assert.That(endPoint, Is.TypeOf<UnixDomainSocketEndPoint>());
        Assert.That(endPoint.ToString(), Is.EqualTo("/tmp/a:b:80"));
    }

    [Test]
    public void Parse_reads_an_IPv4_address_and_port_as_an_IPEndPoint()
    {
        var endPoint = AddressParser.Parse("127.0.0.1:4444");

        Assert.That(endPoint, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 4444)));
    }

    [Test]
    public void Parse_reads_a_bracketed_IPv6_address_and_port_as_an_IPEndPoint()
    {
        var endPoint = AddressParser.Parse("[::1]:4444");

        Assert.That(endPoint, Is.EqualTo(new IPEndPoint(IPAddress.IPv6Loopback, 4444)));
        Assert.That(endPoint.AddressFamily, Is.EqualTo(AddressFamily.InterNetworkV6));
    }

    [Test]
    public void Parse_reads_a_bracketed_IPv6_address_with_a_scope_id()
    {
        var endPoint = (IPEndPoint)AddressParser.Parse("[fe80::1%2]:80");

        Assert.That(endPoint.Address, Is.EqualTo(IPAddress.Parse("fe80::1%2")));
        Assert.That(endPoint.Address.ScopeId, Is.EqualTo(2));
        Assert.That(endPoint.Port, Is.EqualTo(80));
    }

    [Test]
    public void Parse_reads_a_host_name_and_port_as_a_DnsEndPoint_resolved_later()
    {
        var endPoint = AddressParser.Parse("localhost:4444");

        Assert.That(endPoint, Is.TypeOf<DnsEndPoint>());
        var dns = (DnsEndPoint)endPoint;
        Assert.That(dns.Host, Is.EqualTo("localhost"));
        Assert.That(dns.Port, Is.EqualTo(4444));
    }

    [TestCase("127.0.0.1:0", 0)]
    [TestCase("127.0.0.1:65535", 65535)]
    [TestCase("[::1]:0", 0)]
    [TestCase("[::1]:65535", 65535)]
    [TestCase("example.com:0", 0)]
    [TestCase("example.com:65535", 65535)]
    public void Parse_accepts_the_whole_port_range_from_0_to_65535(string address, int port)
    {
        var endPoint = AddressParser.Parse(address);

        var actual = endPoint switch
        {
            IPEndPoint ip => ip.Port,
            DnsEndPoint dns => dns.Port,
            _ => -1,
        };
        Assert.That(actual, Is.EqualTo(port));
    }

    [TestCase("unix:", "empty Unix socket path")]
    [TestCase("", "neither")]
    [TestCase("nohost", "neither")]
    [TestCase(":80", "neither")]
    [TestCase("host:", "invalid port ''")]
    [TestCase("host:65536", "invalid port '65536'")]
    [TestCase("host:-1", "invalid port '-1'")]
    [TestCase("host:+80", "invalid port '+80'")]
    [TestCase("host: 80", "invalid port ' 80'")]
    [TestCase("host:abc", "invalid port 'abc'")]
    [TestCase("host:99999999999", "invalid port '99999999999'")]
    [TestCase("::1:80", "in brackets, as '[::1]:80'")]
    [TestCase("fe80::1:80", "in brackets")]
    [TestCase("[zzz]:80", "invalid IPv6 literal 'zzz'")]
    [TestCase("[127.0.0.1]:80", "invalid IPv6 literal '127.0.0.1'")]
    [TestCase("[]:80", "invalid IPv6 literal ''")]
    public void Parse_rejects_a_malformed_address_with_a_FormatException_that_names_the_address_and_the_problem(string address, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => AddressParser.Parse(address));

        Assert.That(ex!.Message, Does.Contain($"'{address}'"));
        Assert.That(ex.Message, Does.Contain(reason));
    }

    [Test]
    public void Parse_rejects_null_with_ArgumentNullException()
    {
        Assert.Throws<ArgumentNullException>(() => AddressParser.Parse(null!));
    }

    [TestCase("unix:/run/qemu.sock", "unix:/run/qemu.sock")]
    [TestCase("/run/qemu.sock", "unix:/run/qemu.sock")]
    [TestCase("./rel/qmp.sock", "unix:./rel/qmp.sock")]
    [TestCase("127.0.0.1:4444", "127.0.0.1:4444")]
    [TestCase("[::1]:4444", "[::1]:4444")]
    [TestCase("[fe80::1%2]:80", "[fe80::1%2]:80")]
    [TestCase("localhost:4444", "localhost:4444")]
    [TestCase("127.0.0.1:0", "127.0.0.1:0")]
    [TestCase("[::1]:65535", "[::1]:65535")]
    public void Format_writes_the_canonical_text_that_Parse_reads_back_to_an_equal_endpoint(string address, string canonical)
    {
        var parsed = AddressParser.Parse(address);

        var text = AddressParser.Format(parsed);
        var reparsed = AddressParser.Parse(text);

        Assert.That(text, Is.EqualTo(canonical));
        Assert.That(reparsed.GetType(), Is.EqualTo(parsed.GetType()));
        Assert.That(reparsed.ToString(), Is.EqualTo(parsed.ToString()));
        if (parsed is not UnixDomainSocketEndPoint)
        {
            Assert.That(reparsed, Is.EqualTo(parsed));
        }
    }

    [Test]
    public void Format_round_trips_endpoints_made_in_code()
    {
        EndPoint[] endPoints =
        [
            new IPEndPoint(IPAddress.Parse("10.1.2.3"), 5555),
            new IPEndPoint(IPAddress.Parse("2001:db8::42"), 5555),
            new IPEndPoint(IPAddress.IPv6Any, 0),
            new DnsEndPoint("qemu.example", 4444),
        ];

        foreach (var endPoint in endPoints)
        {
            Assert.That(AddressParser.Parse(AddressParser.Format(endPoint)), Is.EqualTo(endPoint), AddressParser.Format(endPoint));
        }

        var unix = new UnixDomainSocketEndPoint("/run/x.sock");
        Assert.That(AddressParser.Parse(AddressParser.Format(unix)).ToString(), Is.EqualTo("/run/x.sock"));
    }
}
