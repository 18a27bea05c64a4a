#!/usr/bin/env bash
# Interleaved A/B benchmark runner for Aqmp.Pipelines.
#
# Usage:
#   benchmarks/ab.sh [--a REV] [--b REV|WORKTREE] [--rounds R] [--seconds S] [--warmup W]
#                    [--only REGEX] [--keep] [--dry-run] ['Type.Method Name=Value ...' ...]
#
# Examples:
#   benchmarks/ab.sh                                   # A = merge-base(main, HEAD), B = HEAD, default cases
#   benchmarks/ab.sh --b WORKTREE                      # B = this working tree, uncommitted changes included
#   benchmarks/ab.sh --a main --b HEAD --only Echo     # default cases whose text matches "Echo"
#   benchmarks/ab.sh --a HEAD --b HEAD -r 2 -s 2 \
#       'EndToEndStreamBenchmarks.SessionSend_SessionReceive Transport=Unix LineLength=64' \
#       'EndToEndStreamBenchmarks.RawSend_RawReceive Transport=Unix LineLength=64'
#
# Why: on a shared machine the raw-socket baseline alone moves ~50% within a day, so two builds are
# only comparable when measured interleaved on the same machine at the same time. This script
# builds the benchmark project of each revision once (Release, `dotnet build`) in its own temporary
# `git worktree` under /tmp, then runs the built DLL directly in the `--loop` mode
# (benchmarks/Aqmp.Pipelines.Benchmarks/BenchmarkLoop.cs): for each round r = 1..R, for each case,
# A then B (B then A on even rounds), each a fresh process: [GlobalSetup], W s untimed warm-up,
# S s timed loop, [GlobalCleanup]. It prints each run's ms per operation, the medians over rounds,
# B/A = A_ms / B_ms (throughput ratio: > 1 means B is faster) and, where the raw baseline of the
# same parameters is among the cases, ours/raw = raw_ms / ours_ms for A and for B from the medians
# (throughput relative to the raw baseline: 0.8 means 80% of raw). It ends with a Markdown table.
#
# "ms/op" is the loop's time per benchmark invocation: one stream operation moves 32 MiB
# (EndToEndStreamBenchmarks, InMemorySendBenchmarks), one echo operation is 4096 round trips.
#
# Both builds run the BenchmarkLoop.cs next to this script (copied over each revision's copy when it
# differs; --no-overlay to keep each revision's own), so that an older revision without --warmup
# still runs, and both sides use the same harness. Only the library and the benchmark classes differ.
#
# Options:
#   --a REV        revision A (default: git merge-base main <B's commit>)
#   --b REV        revision B (default: HEAD); WORKTREE = HEAD plus the working tree's uncommitted
#                  changes and untracked files (of the repository containing the current directory)
#   -r, --rounds R rounds (default 3)       -s, --seconds S  timed seconds per run (default 4)
#   --warmup W     untimed warm-up seconds per run (default 2)
#   --only REGEX   keep only the default cases matching REGEX (grep -E)
#   --keep         keep the temporary worktrees and raw logs (printed at the end)
#   --dry-run      print the resolved revisions, cases and time estimate, then stop
#   --no-overlay   build each revision's own BenchmarkLoop.cs
#   --cpu          compare processor time per operation (all threads, user and system) instead of
#                  wall time: steadier than wall time while other processes load the machine, but
#                  blind to time spent waiting (a change that idles more looks cheaper)
#   cases          each one argument: 'Type.Method Name=Value ...' (replaces the default set)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project_rel=benchmarks/Aqmp.Pipelines.Benchmarks
harness="$script_dir/Aqmp.Pipelines.Benchmarks/BenchmarkLoop.cs"

# The default set. Parameters in a fixed order (Transport, LineLength, Window) so that a case finds
# its raw baseline by name; user-given cases are normalised to the same (sorted) order.
S=EndToEndStreamBenchmarks
M=InMemorySendBenchmarks
E=EndToEndEchoBenchmarks
default_cases=(
  # session → session (SendAsync → OnMessageAsync)
  "$S.SessionSend_SessionReceive LineLength=64 Transport=Unix"
  "$S.SessionSend_SessionReceive LineLength=4096 Transport=Unix"
  "$S.SessionSend_SessionReceive LineLength=64 Transport=Tcp"
  "$S.SessionSend_SessionReceive LineLength=4096 Transport=Tcp"
  # raw sender → session receive
  "$S.RawSend_SessionReceive LineLength=64 Transport=Unix"
  "$S.RawSend_SessionReceive LineLength=64 Transport=Tcp"
  # session send → raw receiver
  "$S.SessionSend_RawReceive LineLength=64 Transport=Unix"
  "$S.SessionSend_RawReceive LineLength=64 Transport=Tcp"
  # raw-socket baseline of the same parameters
  "$S.RawSend_RawReceive LineLength=64 Transport=Unix"
  "$S.RawSend_RawReceive LineLength=4096 Transport=Unix"
  "$S.RawSend_RawReceive LineLength=64 Transport=Tcp"
  "$S.RawSend_RawReceive LineLength=4096 Transport=Tcp"
  # in-memory send: SendAsync per line, SendManyAsync in bursts of 64, the hand-written baseline
  "$M.SessionSend_MemoryPipe LineLength=64"
  "$M.SessionSend_MemoryPipe LineLength=4096"
  "$M.SessionSendMany64_MemoryPipe LineLength=64"
  "$M.SessionSendMany64_MemoryPipe LineLength=4096"
  "$M.HandWrittenChunks_MemoryPipe LineLength=64"
  "$M.HandWrittenChunks_MemoryPipe LineLength=4096"
  # echo, 64 outstanding, and its raw echo baseline
  "$E.SessionEcho Transport=Unix Window=64"
  "$E.SessionEcho Transport=Tcp Window=64"
  "$E.RawEcho Transport=Unix Window=64"
  "$E.RawEcho Transport=Tcp Window=64"
)

# The raw baseline a case is compared with (same parameters), or nothing.
raw_of() {
  local method=${1%% *} params=""
  [[ $1 == *" "* ]] && params=" ${1#* }"
  case $method in
    "$S.RawSend_RawReceive" | "$M.HandWrittenChunks_MemoryPipe" | "$E.RawEcho") ;;
    "$S".*) echo "$S.RawSend_RawReceive$params" ;;
    "$M".*) echo "$M.HandWrittenChunks_MemoryPipe$params" ;;
    "$E".*) echo "$E.RawEcho$params" ;;
  esac
}

# 'Type.Method B=2 A=1' → 'Type.Method A=1 B=2'
normalise() {
  local -a words
  read -ra words <<<"$1"
  if ((${#words[@]} > 1)); then
    printf '%s %s\n' "${words[0]}" "$(printf '%s\n' "${words[@]:1}" | sort | tr '\n' ' ' | sed 's/ $//')"
  else
    printf '%s\n' "${words[0]}"
  fi
}

die() { echo "ab.sh: $*" >&2; exit 2; }

rev_a="" rev_b="HEAD" rounds=3 seconds=4 warmup=2 only="" keep=0 dry_run=0 overlay=1 metric=wall
cases=()
while (($#)); do
  case $1 in
    --a) rev_a=$2; shift 2 ;;
    --a=*) rev_a=${1#--a=}; shift ;;
    --b) rev_b=$2; shift 2 ;;
    --b=*) rev_b=${1#--b=}; shift ;;
    -r | --rounds) rounds=$2; shift 2 ;;
    --rounds=*) rounds=${1#--rounds=}; shift ;;
    -s | --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    --warmup) warmup=$2; shift 2 ;;
    --warmup=*) warmup=${1#--warmup=}; shift ;;
    --only) only=$2; shift 2 ;;
    --only=*) only=${1#--only=}; shift ;;
    --keep) keep=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    --no-overlay) overlay=0; shift ;;
    --cpu) metric=cpu; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) cases+=("$(normalise "$1")"); shift ;;
  esac
done
((${#cases[@]})) || cases=("${default_cases[@]}")
if [[ -n $only ]]; then
  mapfile -t cases < <(printf '%s\n' "${cases[@]}" | grep -E -- "$only" || true)
  ((${#cases[@]})) || die "no case matches --only $only"
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"

# The repository: the one containing the current directory, else the one containing this script.
repo=$(git rev-parse --show-toplevel 2>/dev/null || git -C "$script_dir" rev-parse --show-toplevel)
if [[ $rev_b == WORKTREE ]]; then
  commit_b=$(git -C "$repo" rev-parse --verify HEAD^{commit})
  label_b="WORKTREE ($repo, HEAD ${commit_b:0:10} + uncommitted)"
else
  commit_b=$(git -C "$repo" rev-parse --verify "$rev_b^{commit}") || die "no revision $rev_b"
  label_b="$rev_b (${commit_b:0:10})"
fi
if [[ -z $rev_a ]]; then
  rev_a=$(git -C "$repo" merge-base main "$commit_b") || die "no merge-base of main and $rev_b; give --a"
  label_a="merge-base(main, B) (${rev_a:0:10})"
else
  label_a="$rev_a ($(git -C "$repo" rev-parse --short=10 "$rev_a^{commit}"))"
fi
commit_a=$(git -C "$repo" rev-parse --verify "$rev_a^{commit}") || die "no revision $rev_a"

n=${#cases[@]}
# Per run: warm-up + timed loop + ~1 s of process start, [GlobalSetup] and [GlobalCleanup].
estimate=$(awk -v n="$n" -v r="$rounds" -v s="$seconds" -v w="$warmup" 'BEGIN { printf "%d", n * 2 * r * (s + w + 1) }')
echo "A: $label_a"
echo "B: $label_b"
[[ $commit_a == "$commit_b" && $rev_b != WORKTREE ]] && echo "(A and B are the same commit: this run measures the noise floor)"
echo "$n cases × 2 builds × $rounds rounds × ($seconds s + $warmup s warm-up + ~1 s start-up) ≈ $((estimate / 60)) min $((estimate % 60)) s, plus two builds (~1 min)"
printf '  %s\n' "${cases[@]}"
((dry_run)) && exit 0
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
load_start=$(load)

work=$(mktemp -d /tmp/aqmp-ab.XXXXXX)
cleanup() {
  local status=$?
  if ((keep)); then
    echo "kept: $work (remove the worktrees with: git -C $repo worktree remove --force $work/a; ... $work/b)"
  else
    for side in a b; do
      [[ -d $work/$side ]] && git -C "$repo" worktree remove --force "$work/$side" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Worktree for one side; builds it; sets dll_<side>.
prepare() {
  local side=$1 commit=$2 rev=$3 dir="$work/$1"
  git -C "$repo" worktree add --detach --quiet "$dir" "$commit"
  if [[ $side == b && $rev == WORKTREE ]]; then
    # Uncommitted changes (staged or not) and untracked, non-ignored files.
    git -C "$repo" diff HEAD --binary | git -C "$dir" apply --binary --allow-empty
    if [[ -n $(cd "$repo" && git ls-files --others --exclude-standard) ]]; then
      (cd "$repo" && git ls-files --others --exclude-standard -z | xargs -0r tar cf - --) | tar xf - -C "$dir"
    fi
  fi
  local loop="$dir/$project_rel/BenchmarkLoop.cs"
  [[ -f $loop ]] || die "revision $rev has no $project_rel/BenchmarkLoop.cs (--loop mode)"
  if ((overlay)) && ! cmp -s "$harness" "$loop"; then
    cp "$harness" "$loop"
    # The harness reads its Name=Value arguments through BenchmarkArguments.cs: bring it along.
    cp "$(dirname "$harness")/BenchmarkArguments.cs" "$(dirname "$loop")/"
    echo "  $side: using this script's BenchmarkLoop.cs (differs from the revision's)"
  fi
  echo "building $side ($rev) in $dir ..."
  if ! dotnet build "$dir/$project_rel" -c Release --nologo -v q >"$work/build-$side.log" 2>&1; then
    tail -30 "$work/build-$side.log" >&2
    die "build of $side failed (log: $work/build-$side.log; use --keep to keep it)"
  fi
  local dll="$dir/$project_rel/bin/Release/net10.0/Aqmp.Pipelines.Benchmarks.dll"
  [[ -f $dll ]] || dll=$(find "$dir/$project_rel/bin/Release" -name Aqmp.Pipelines.Benchmarks.dll | head -1)
  [[ -f $dll ]] || die "no Aqmp.Pipelines.Benchmarks.dll under $dir/$project_rel/bin/Release"
  printf -v "dll_$side" '%s' "$dll"
}

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
started=$(date +%s)
prepare a "$commit_a" "$rev_a"
prepare b "$commit_b" "$rev_b"
echo "built in $(($(date +%s) - started)) s"

# One run: prints the ms per operation (or nan), records it and the cold figure.
run_one() {
  local side=$1 i=$2 r=$3 dll log
  [[ $side == a ]] && dll=$dll_a || dll=$dll_b
  log="$work/run-$i-$side-$r.log"
  local -a words
  read -ra words <<<"${cases[$i]}"
  if dotnet "$dll" --loop "${words[@]}" --seconds="$seconds" --warmup="$warmup" >"$log" 2>&1; then
    local ms cold
    if [[ $metric == cpu ]]; then
      ms=$(sed -n 's/.*processor time (all threads, user and system): \([0-9.]*\) ms each$/\1/p' "$log" | head -1)
    else
      ms=$(sed -n 's/.* operations in .* s, \([0-9.]*\) ms each$/\1/p' "$log" | head -1)
    fi
    cold=$(sed -n 's/.*cold (first second after set-up): .* operations, \([0-9.]*\) ms each$/\1/p' "$log" | head -1)
    echo "${ms:-nan}" >"$work/ms-$i-$side-$r"
    echo "${cold:-nan}" >"$work/cold-$i-$side-$r"
  else
    echo nan >"$work/ms-$i-$side-$r"
    echo nan >"$work/cold-$i-$side-$r"
    echo "  run failed: $side ${cases[$i]} (round $r):" >&2
    tail -5 "$log" | sed 's/^/    /' >&2
  fi
  cat "$work/ms-$i-$side-$r"
}

for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(a b); else order=(b a); fi
  for ((i = 0; i < n; i++)); do
    line=$(printf '[round %d/%d, %s %s, %ds] %s:' "$r" "$rounds" "${order[0]^^}" "${order[1]^^}" "$(($(date +%s) - started))" "${cases[$i]}")
    for side in "${order[@]}"; do
      line+=" ${side^^} $(run_one "$side" "$i" "$r") ms"
    done
    echo "$line"
  done
done

# Medians and ratios. Values of one side of one case: one line each.
values() { for ((r = 1; r <= rounds; r++)); do cat "$work/$1-$2-$3-$r"; done; }
median() { { grep -v nan || true; } | sort -g | awk '{ v[++n] = $1 } END { if (!n) print "nan"; else if (n % 2) print v[(n + 1) / 2]; else printf "%.3f\n", (v[n / 2] + v[n / 2 + 1]) / 2 }'; }
# ratio X Y = X / Y to 3 places, or "—"
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (x == "nan" || y == "nan" || y + 0 == 0) print "—"; else printf "%.3f", x / y }'; }
index_of() { local j; for ((j = 0; j < n; j++)); do [[ ${cases[$j]} == "$1" ]] && { echo "$j"; return; }; done; }

declare -a med_a med_b
for ((i = 0; i < n; i++)); do
  med_a[i]=$(values ms "$i" a | median)
  med_b[i]=$(values ms "$i" b | median)
done

echo
echo "## Per case (ms per operation; B/A = A_ms / B_ms, > 1 means B faster; x/raw = raw_ms / x_ms)"
table=()
for ((i = 0; i < n; i++)); do
  per_round=""
  for ((r = 1; r <= rounds; r++)); do
    per_round+=" $(ratio "$(cat "$work/ms-$i-a-$r")" "$(cat "$work/ms-$i-b-$r")")"
  done
  ba=$(ratio "${med_a[i]}" "${med_b[i]}")
  a_raw="—" b_raw="—"
  raw=$(raw_of "${cases[$i]}")
  if [[ -n $raw ]] && j=$(index_of "$raw") && [[ -n $j ]]; then
    a_raw=$(ratio "${med_a[j]}" "${med_a[i]}")
    b_raw=$(ratio "${med_b[j]}" "${med_b[i]}")
  fi
  echo "${cases[$i]}"
  echo "  A:$(values ms "$i" a | tr '\n' ' ' | sed 's/^/ /')→ median ${med_a[i]}   (cold:$(values cold "$i" a | tr '\n' ' ' | sed 's/^/ /; s/ $//'))"
  echo "  B:$(values ms "$i" b | tr '\n' ' ' | sed 's/^/ /')→ median ${med_b[i]}   (cold:$(values cold "$i" b | tr '\n' ' ' | sed 's/^/ /; s/ $//'))"
  echo "  B/A $ba (per round:$per_round)   A/raw $a_raw   B/raw $b_raw"
  table+=("| ${cases[$i]} | ${med_a[i]} | ${med_b[i]} | $ba | $a_raw | $b_raw |$per_round |")
done

echo
echo "## A/B, $(date -u +%Y-%m-%d), $rounds rounds × $seconds s (+ $warmup s warm-up), medians"
echo
echo "A = $label_a, B = $label_b; ms per operation (stream: 32 MiB; echo: 4096 round trips), $([[ $metric == cpu ]] && echo "processor time of all threads" || echo "wall time")."
echo "$(nproc 2>/dev/null || echo ?) cores; load average at start $load_start, at end $(load)."
echo "B/A = A_ms / B_ms (> 1: B faster); A/raw, B/raw = raw_ms / ours_ms (throughput relative to the raw baseline)."
echo
echo "| case | A median ms | B median ms | B/A | A/raw | B/raw | B/A per round |"
echo "|---|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${table[@]}"
echo
echo "total $(($(date +%s) - started)) s"
