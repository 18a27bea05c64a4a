using System.Runtime.InteropServices;
using System.Text.Json;
using Aqmp.Pipelines.Qmp.Messages;

namespace Aqmp.Pipelines.Qmp.Client;

// Passing file descriptors to QEMU: getfd, add-fd, and any command that takes descriptors.
public partial class QmpClient
{
    private readonly SemaphoreSlim _descriptorTurn = new(1, 1);

    /// <summary>
    /// Executes a command with file descriptors, as QEMU expects them for <c>getfd</c> and
    /// <c>add-fd</c>: sent with the command itself (<c>SCM_RIGHTS</c> on its first byte). QEMU keeps
    /// only the descriptors of the last message that carried any, until a command takes them, so
    /// commands with descriptors are sent one at a time: each waits until the one before has its
    /// reply (commands without descriptors are not held up). Otherwise as
    /// <see cref="ExecuteAsync(string, JsonElement?, CancellationToken)"/>. The handles may be
    /// disposed once this returns (or fails): each is referenced until its descriptor was sent.
    /// </summary>
    /// <param name="command">The command, e.g. <c>getfd</c>.</param>
    /// <param name="arguments">Its arguments, a JSON object, or null.</param>
    /// <param name="descriptors">The handles (files, pipes, sockets) whose descriptors go with the command: 1 to 253.</param>
    /// <param name="cancellationToken">Stops waiting for the turn or the reply.</param>
    /// <returns>The <c>return</c> value.</returns>
    /// <exception cref="NotSupportedException">
    /// The client does not pass descriptors: set <see cref="Session.PipeProtocolOptions.AllowDescriptorPassing"/>
    /// in <see cref="QmpClientOptions.Session"/> and connect over a Unix-domain socket.
    /// </exception>
    /// <exception cref="ArgumentException">No descriptors, more than 253, or a null handle.</exception>
    /// <exception cref="ObjectDisposedException">A handle is closed.</exception>
    /// <exception cref="QmpExecuteException">QEMU answered with an error (it closed the descriptors it took).</exception>
    /// <exception cref="QmpExecuteInterruptedException">As for <see cref="ExecuteAsync(string, JsonElement?, CancellationToken)"/>.</exception>
    /// <exception cref="Session.StateException">The client is not <see cref="Session.Runstate.Running"/>.</exception>
    /// <exception cref="TimeoutException"><see cref="QmpClientOptions.DefaultExecuteTimeout"/> elapsed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async Task<JsonElement> ExecuteAsync(string command, JsonElement? arguments, ReadOnlyMemory<SafeHandle> descriptors, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        if (descriptors.IsEmpty)
        {
            throw new ArgumentException("No descriptors to pass: use ExecuteAsync without descriptors.", nameof(descriptors));
        }

        if (!AllowsDescriptorPassing)
        {
            throw new NotSupportedException("This client does not pass file descriptors: set AllowDescriptorPassing in QmpClientOptions.Session and connect over a Unix-domain socket.");
        }

        await _descriptorTurn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var reply = await ExecuteCoreAsync(command, id => QmpMessage.Command(command, arguments, id), cancellationToken, descriptors).ConfigureAwait(false);
            return reply is null ? default : ReturnValueOf(command, reply);
        }
        finally
        {
            _descriptorTurn.Release();
        }
    }

    /// <summary>
    /// Passes a file descriptor to QEMU under a name (<c>getfd</c>), for commands that take a
    /// descriptor by name (<c>netdev_add</c>, <c>chardev-add</c>, <c>closefd</c>…). A name QEMU holds
    /// already is given the new descriptor, and the old one is closed.
    /// </summary>
    /// <param name="name">The name; QEMU refuses one that starts with a digit.</param>
    /// <param name="descriptor">The handle to pass (a file, pipe or socket).</param>
    /// <param name="cancellationToken">Stops waiting for the turn or the reply.</param>
    /// <returns>A task that completes when QEMU holds the descriptor.</returns>
    /// <exception cref="QmpExecuteException">QEMU refused (a name that starts with a digit).</exception>
    /// <exception cref="NotSupportedException">As for <see cref="ExecuteAsync(string, JsonElement?, ReadOnlyMemory{SafeHandle}, CancellationToken)"/>.</exception>
    public async Task GetFdAsync(string name, SafeHandle descriptor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(descriptor);
        var arguments = QmpJson.Write(writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("fdname", name);
            writer.WriteEndObject();
        });
        await ExecuteAsync("getfd", arguments, new[] { descriptor }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Adds a file descriptor to an fd set (<c>add-fd</c>), which QEMU opens as
    /// <c>/dev/fdset/{id}</c>; <c>query-fdsets</c> lists it and <c>remove-fd</c> releases it.
    /// </summary>
    /// <param name="descriptor">The handle to pass (a file, pipe or socket).</param>
    /// <param name="fdsetId">The fd set to add it to; a new one when null.</param>
    /// <param name="opaque">Free text QEMU keeps with it (shown by <c>query-fdsets</c>), or null.</param>
    /// <param name="cancellationToken">Stops waiting for the turn or the reply.</param>
    /// <returns>The fd set and the descriptor's number in QEMU.</returns>
    /// <exception cref="QmpExecuteException">QEMU refused.</exception>
    /// <exception cref="NotSupportedException">As for <see cref="ExecuteAsync(string, JsonElement?, ReadOnlyMemory{SafeHandle}, CancellationToken)"/>.</exception>
    public async Task<QmpFdSetEntry> AddFdAsync(SafeHandle descriptor, long? fdsetId = null, string? opaque = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var arguments = QmpJson.Write(writer =>
        {
            writer.WriteStartObject();
            if (fdsetId is { } id)
            {
                writer.WriteNumber("fdset-id", id);
            }

            if (opaque is not null)
            {
                writer.WriteString("opaque", opaque);
            }

            writer.WriteEndObject();
        });
        var info = await ExecuteAsync("add-fd", arguments, new[] { descriptor }, cancellationToken).ConfigureAwait(false);
        return new QmpFdSetEntry(info.GetProperty("fdset-id").GetInt64(), info.GetProperty("fd").GetInt64());
    }
}
