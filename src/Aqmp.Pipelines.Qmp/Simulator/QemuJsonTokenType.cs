namespace Aqmp.Pipelines.Qmp.Simulator;

/// <summary>The kinds of token QEMU 7.2's JSON lexer hands its streamer.</summary>
internal enum QemuJsonTokenType
{
    /// <summary>A byte that no token can hold here (the lexer then skips to a resynchronisation point).</summary>
    Error,

    /// <summary><c>{</c>.</summary>
    LeftCurly,

    /// <summary><c>}</c>.</summary>
    RightCurly,

    /// <summary><c>[</c>.</summary>
    LeftSquare,

    /// <summary><c>]</c>.</summary>
    RightSquare,

    /// <summary><c>:</c>.</summary>
    Colon,

    /// <summary><c>,</c>.</summary>
    Comma,

    /// <summary>An integer: an optional minus and digits.</summary>
    Integer,

    /// <summary>A number with a fraction or an exponent.</summary>
    Float,

    /// <summary>A run of lower-case ASCII letters (only <c>true</c>, <c>false</c> and <c>null</c> parse).</summary>
    Keyword,

    /// <summary>A string in double or single quotes, quotes included, escapes not yet decoded.</summary>
    String,
}
