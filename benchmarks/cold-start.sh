#!/usr/bin/env bash
# Cold start of whole aqmp processes: median and fastest wall time, and median CPU time (user +
# system, which other processes' load disturbs less than wall time), of RUNS runs (after 2 warm-ups)
# of `aqmp --help` and `aqmp execute SOCK query-status`, against `aqmp serve` and against QEMU,
# for the JIT build (the apphost of src/Aqmp.Pipelines.Cli, as the dotnet tool runs it) and the
# native one (artifacts/native/aqmp: dotnet cake --target=PublishNative).
#   benchmarks/cold-start.sh [RUNS]        (default 30; also: dotnet cake --target=ColdStart)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
jit=src/Aqmp.Pipelines.Cli/bin/Release/net10.0/aqmp
native=artifacts/native/aqmp
for tool in "$jit" "$native"; do
  [ -x "$tool" ] || { echo "missing $tool: build Release and run dotnet cake --target=PublishNative" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$native" serve "unix:$work/serve.sock" >/dev/null & pids+=($!)
targets=("aqmp serve|$work/serve.sock")
if command -v qemu-system-x86_64 >/dev/null; then
  qemu-system-x86_64 -M none -display none -nodefaults -qmp "unix:$work/qemu.sock,server=on,wait=off" & pids+=($!)
  targets+=("QEMU 7.2|$work/qemu.sock")
fi
for _ in $(seq 100); do [ -S "$work/serve.sock" ] && { [ ${#targets[@]} -eq 1 ] || [ -S "$work/qemu.sock" ]; } && break; sleep 0.05; done

# time_ms COMMAND...: "WALL CPU" of one run, in milliseconds; fails if the command fails.
time_ms() {
  local TIMEFORMAT='%3R %3U %3S' times
  times=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "$times" | awk '{ printf "%.2f %.2f\n", $1 * 1000, ($2 + $3) * 1000 }'
}

# measure LABEL COMMAND...: prints LABEL, the median and the fastest wall time and the median CPU time of $runs runs.
measure() {
  local label="$1"; shift
  "$@" >/dev/null; "$@" >/dev/null
  for _ in $(seq "$runs"); do time_ms "$@"; done | awk -v label="$label" -v runs="$runs" '
    function median(a, n,   i, j, x) {
      for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { wall[NR] = $1; cpu[NR] = $2 }
    END { w = median(wall, NR); c = median(cpu, NR); printf "%-52s wall median %7.1f ms, fastest %7.1f ms; CPU median %7.1f ms (%d runs)\n", label, w, wall[1], c, runs }'
}

echo "cold start, $(nproc) cores, $(uname -m); runs=$runs"
for build in JIT native; do
  tool="$jit"; [ "$build" = native ] && tool="$native"
  measure "$build: aqmp --help" "$tool" --help
  for target in "${targets[@]}"; do
    measure "$build: aqmp execute SOCK query-status (${target%%|*})" "$tool" execute "${target#*|}" query-status
  done
done
