using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Aqmp.Pipelines.Tests.Support;

/// <summary>A self-signed server certificate made once per test run, and TLS options that use it.</summary>
internal static class TestCertificates
{
    private static readonly Lazy<X509Certificate2> Server = new(CreateSelfSigned);

    public static X509Certificate2 ServerCertificate => Server.Value;

    public static SslServerAuthenticationOptions ServerOptions() => new()
    {
        ServerCertificate = ServerCertificate,
        ClientCertificateRequired = false,
    };

    /// <summary>Client options that trust exactly the test certificate (by thumbprint).</summary>
    public static SslClientAuthenticationOptions ClientOptions(string targetHost = "localhost") => new()
    {
        TargetHost = targetHost,
        RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            certificate is not null && certificate.GetCertHashString() == ServerCertificate.GetCertHashString(),
    };

    private static X509Certificate2 CreateSelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));

        // Round-trip through PKCS#12 so the private key is usable by SslStream on every platform.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), password: null);
    }
}
