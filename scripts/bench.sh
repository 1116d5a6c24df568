#!/usr/bin/env bash
# Issue 6's benchmark suite, one command: release build, then per stage the wall time and peak
# RSS. Sizes by flag; the default is the 1M-quantum DRP-shaped graph of the targets table.
#   scripts/bench.sh [--visits 5000] [--detectors 100] [--work /tmp/quanta-bench]
set -euo pipefail
visits=5000 detectors=100 work=/tmp/quanta-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --visits) visits=$2; shift 2 ;;
    --detectors) detectors=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "usage: $0 [--visits N] [--detectors N] [--work DIR]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
swift build -c release >/dev/null
bin=$(swift build -c release --show-bin-path)
rm -rf "$work"; mkdir -p "$work"
measure() {  # measure LABEL CMD...: one line "LABEL: wall s, peak MB"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || { cat "$work/out" "$work/err" >&2; exit 1; }
  read -r wall kb < "$work/time"
  printf '%-44s %8.2f s %8.0f MB\n' "$label" "$wall" "$((kb / 1024))"
}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(swift --version 2>&1 | head -1)"
measure "graph synth ($visits visits × $detectors det.)" "$bin/quanta" graph synth --visits "$visits" --detectors "$detectors" --out "$work/g.qgn"
head -1 "$work/out"
measure "graph info" "$bin/quanta" graph info "$work/g.qgn"
"$bin/quanta" repo create "$work/repo" >/dev/null
cat > "$work/cmd.yaml" <<'YAML'
pipetask:
  isr: {command: "cp {input:raw} {output:postISRCCD}"}
  calibrate: {command: "cp {input:postISRCCD} {output:calexp} && cp {input:postISRCCD} {output:src}"}
  gather: {command: "cat {input:src} > {output:visitSummary}"}
  makeWarp: {command: "cat {input:calexp} > {output:deepCoadd_directWarp}"}
  assembleCoadd: {command: "cat {input:deepCoadd_directWarp} > {output:deepCoadd}"}
  detectCoadd: {command: "cp {input:deepCoadd} {output:deepCoadd_obj}"}
YAML
QUANTA_TIMINGS=1 measure "plan (read, cluster, arrays, snapshot, scripts)" "$bin/quanta" plan "$work/g.qgn" --repo "$work/repo" --config "$work/cmd.yaml" --out "$work/sub"
grep timings "$work/err" | sed 's/^/    /'
grep -E "^Planned|jobs in" "$work/out" | head -2 | sed 's/^/    /'
du -sh "$work/sub/snapshot.bin" | awk '{print "    snapshot " $1}'
