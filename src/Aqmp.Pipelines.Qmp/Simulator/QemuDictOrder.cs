namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>
/// The order in which QEMU's <c>QDict</c> lists its members: by hash bucket (of 512), and within
/// a bucket the member inserted last first.
/// </summary>
internal static class QemuDictOrder
{
    private const int Buckets = 512;

    /// <summary>The bucket QEMU puts a key in (<c>tdb_hash</c> of its modified UTF-8 bytes, modulo 512).</summary>
    /// <param name="key">The key.</param>
    /// <returns>The bucket, 0 to 511.</returns>
    public static int Bucket(string key)
    {
        var bytes = QemuUtf8.Encode(key);
        unchecked
        {
            var value = 0x238F13AFu * (uint)bytes.Length;
            for (var i = 0; i < bytes.Length; i++)
            {
                value += (uint)bytes[i] << (i * 5 % 24);
            }

            return (int)((1103515243u * value + 12345u) % Buckets);
        }
    }

    /// <summary>Orders members given in insertion order as a <c>QDict</c> lists them.</summary>
    /// <typeparam name="T">The member type.</typeparam>
    /// <param name="inserted">The members, first inserted first.</param>
    /// <param name="key">A member's key.</param>
    /// <returns>The members in QEMU's order.</returns>
    public static IEnumerable<T> FromInsertion<T>(IReadOnlyList<T> inserted, Func<T, string> key)
        => inserted.Select((member, index) => (member, index, bucket: Bucket(key(member))))
            .OrderBy(m => m.bucket).ThenByDescending(m => m.index).Select(m => m.member);

    /// <summary>
    /// Orders members already listed as QEMU would print them, or built in that order: by bucket,
    /// keeping the given order within a bucket (so QEMU's own output is left as it is).
    /// </summary>
    /// <typeparam name="T">The member type.</typeparam>
    /// <param name="members">The members.</param>
    /// <param name="key">A member's key.</param>
    /// <returns>The members in QEMU's order.</returns>
    public static IEnumerable<T> Stable<T>(IEnumerable<T> members, Func<T, string> key)
        => members.OrderBy(m => Bucket(key(m)));
}
