namespace Aqmp.Pipelines.Framing;

/// <summary>The order in which a multi-byte length field's bytes are sent.</summary>
public enum ByteOrder
{
    /// <summary>Most significant byte first (network order).</summary>
    BigEndian,

    /// <summary>Least significant byte first.</summary>
    LittleEndian,
}
