namespace Aqmp.Pipelines.Cli.Shell.Editor;

/// <summary>What Tab completes: the candidates for the word at the cursor.</summary>
internal interface ICompletionSource
{
    /// <summary>The candidates for the word of <paramref name="line"/> that ends at <paramref name="cursor"/>.</summary>
    Completion Complete(string line, int cursor);
}
