#!/usr/bin/env bash
# Issue 6's benchmark suite, one command: release build (Swift runtime linked statically, as for
# production), then per stage the wall time and peak RSS. Sizes by flag; the defaults are the
# targets table's: a 1M-quantum DRP-shaped graph for plan/info/snapshot lookup, 100 one-quantum
# jobs for run-quantum's overhead, and a 102,700-job submission for status and merge.
#   scripts/bench.sh [--visits 5000] [--detectors 100] [--status-visits 500] [--work /tmp/quanta-bench]
#   scripts/bench.sh --only plan|run-quantum|status     one part
set -euo pipefail
visits=5000 detectors=100 status_visits=500 work=/tmp/quanta-bench only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --visits) visits=$2; shift 2 ;;
    --detectors) detectors=$2; shift 2 ;;
    --status-visits) status_visits=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "usage: $0 [--visits N] [--detectors N] [--status-visits N] [--work DIR] [--only plan|run-quantum|status]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
swift build -c release --static-swift-stdlib >/dev/null
bin=$(swift build -c release --static-swift-stdlib --show-bin-path)
rm -rf "$work"; mkdir -p "$work"
measure() {  # measure LABEL CMD...: one line "LABEL: wall s, peak MB"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || { cat "$work/out" "$work/err" >&2; exit 1; }
  read -r wall kb < "$work/time"
  printf '%-44s %8.2f s %8.0f MB\n' "$label" "$wall" "$((kb / 1024))"
}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(swift --version 2>&1 | head -1)"
part() { [ -z "$only" ] || [ "$only" = "$1" ]; }
cp scripts/synth-commands.yaml "$work/cmd.yaml"
if part plan; then
# The raws are written and registered: plan checks every overall input is in the repository.
measure "graph synth ($visits visits × $detectors det.) + raws" "$bin/quanta" graph synth --visits "$visits" --detectors "$detectors" --out "$work/g.qgn" --repo "$work/repo"
head -1 "$work/out"
measure "graph info" "$bin/quanta" graph info "$work/g.qgn"
QUANTA_TIMINGS=1 measure "plan (read, cluster, arrays, snapshot, scripts)" "$bin/quanta" plan "$work/g.qgn" --repo "$work/repo" --config "$work/cmd.yaml" --out "$work/sub"
grep timings "$work/err" | sed 's/^/    /'
{ grep -E "quanta in .* jobs" "$work/out" || true; } | sed "s/^ */    /"
du -sh "$work/sub/snapshot.bin" | awk '{print "    snapshot " $1}'
# Snapshot lookup: one job of the 1M-quantum snapshot (its input is missing, so nothing runs).
for i in 1 2 3; do
  { QUANTA_TIMINGS=1 "$bin/run-quantum" --submit-dir "$work/sub" --array isr-7 --index 40 --force 2>&1 >/dev/null || true; } |
    grep timings | sed 's/^/    run-quantum in the 1M snapshot: /'
done
fi

if part run-quantum; then
# run-quantum overhead: 100 one-quantum jobs of `cp`, one after another, against the same `cp`
# run 100 times through /bin/sh (what run-quantum itself spawns).
rq=$work/rq; mkdir -p "$rq"
"$bin/quanta" repo create "$rq/repo" >/dev/null
"$bin/quanta" graph synth --visits 10 --detectors 10 --out "$rq/g.qgn" --repo "$rq/repo" >/dev/null
"$bin/quanta" plan "$rq/g.qgn" --repo "$rq/repo" --config "$work/cmd.yaml" --out "$rq/sub" >/dev/null
jobs=$(seq 0 99)
t0=$(date +%s.%N)
for i in $jobs; do "$bin/run-quantum" --submit-dir "$rq/sub" --array isr --index "$i" >/dev/null 2>&1; done
t1=$(date +%s.%N)
raw=$(find "$rq/repo/datastore/synth/raw" -type f -print -quit)  # not "| head -1": find dies of SIGPIPE under pipefail
for i in $jobs; do /bin/sh -c "cp '$raw' '$rq/x'"; done
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { j = (b - a) * 10; s = (c - b) * 10;
  printf "run-quantum, one-quantum job of cp: %.1f ms per job; sh -c cp alone %.1f ms; overhead %.1f ms\n", j, s, j - s }'
for i in 1 2 3; do
  QUANTA_TIMINGS=1 "$bin/run-quantum" --submit-dir "$rq/sub" --array isr --index 0 --force 2>&1 >/dev/null | grep timings | sed 's/^/    /'
done
# Issue 13: before a quantum runs, run-quantum reads the manifest of the job that made each of its
# inputs inside the graph. A per-visit gather over 100 detectors reads 100 of them.
gq=$work/gather; mkdir -p "$gq"
"$bin/quanta" graph synth --visits 2 --detectors 100 --out "$gq/g.qgn" --repo "$gq/repo" >/dev/null
"$bin/quanta" plan "$gq/g.qgn" --repo "$gq/repo" --config "$work/cmd.yaml" --out "$gq/sub" >/dev/null
for a in isr calibrate; do for i in $(seq 0 199); do "$bin/run-quantum" --submit-dir "$gq/sub" --array $a --index "$i" >/dev/null 2>&1; done; done
for i in 1 2 3; do
  QUANTA_TIMINGS=1 "$bin/run-quantum" --submit-dir "$gq/sub" --array gather --index 0 --force 2>&1 >/dev/null | grep timings | sed 's/^/    gather of 100 detectors: /'
done
fi

if part status; then
# status and merge on a submission of one-quantum jobs whose manifests are written by
# `quanta bench simulate-run` (running 100,000 jobs here would take ~17 minutes).
st=$work/status; mkdir -p "$st"
"$bin/quanta" graph synth --visits "$status_visits" --detectors "$detectors" --out "$st/g.qgn" --repo "$st/repo" >/dev/null
"$bin/quanta" plan "$st/g.qgn" --repo "$st/repo" --config "$work/cmd.yaml" --out "$st/sub" >/dev/null
measure "bench simulate-run (manifests + outputs)" "$bin/quanta" bench simulate-run "$st/sub"
head -1 "$work/out" | sed 's/^/    /'
# status reads manifests through status-cache.bin; --fresh reads every one. Directories count as
# settled 10 s after their last change, so wait that long after the simulated run.
sleep 10
for i in 1 2 3; do measure "status --fresh (every manifest read)" "$bin/quanta" status "$st/sub" --fresh; done
measure "status, first (writes status-cache.bin)" "$bin/quanta" status "$st/sub"
for i in 1 2 3; do measure "status (through status-cache.bin)" "$bin/quanta" status "$st/sub"; done
rm -f "$st/sub/status-cache.bin"
QUANTA_TIMINGS=1 measure "merge into SQLite" "$bin/quanta" merge "$st/sub"
grep timings "$work/err" | sed 's/^/    /'
grep "Merged" "$work/out" | sed 's/^/    /'
awk -F'[:,]' '/"registered"/ { n = $2 } /"registry"/ { r = $2 } /"seconds" :/ { s = $2 }
  END { printf "    %d datasets: %.0f datasets/s end to end, %.0f datasets/s into the registry\n", n, n / s, n / r }' "$st/sub/merge-summary.json"
for i in 1 2; do measure "status after the merge (its cache)" "$bin/quanta" status "$st/sub"; done
fi
