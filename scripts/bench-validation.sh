#!/usr/bin/env bash
# Issue 5's benchmark: what run-quantum's output checks cost next to the quantum itself, on a
# 4k×4k image. Makes a one-raw survey of 4096² pixels, then reruns isr:0 and calibrate:0 (each
# writes image + mask + variance, 192 MB) N times, and prints per run: the quantum's wall time
# (from its manifest), the checks' time (from its log) and their share. Release build.
#   scripts/bench-validation.sh [RUNS] [WORKDIR]
set -euo pipefail
runs=${1:-3}
work=${2:-/tmp/quanta-bench-validation}
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
swift build -c release >/dev/null
bin=$(swift build -c release --show-bin-path)
rm -rf "$work"
start=$(date +%s.%N)
"$bin/quanta" demo --workdir "$work" --visits 1 --detectors 1 --size 4096 --plan-only >/dev/null
printf 'survey of 2 raws of 4100×4096 written, ingested and planned in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
for task in isr calibrate; do
  for i in $(seq 1 "$runs"); do
    "$bin/quanta" rerun "$work/submit" --job "$task:0" --force >/dev/null
    python3 - "$work/submit" "$task" <<'PY'
import json, re, sys, glob, os
sub, task = sys.argv[1], sys.argv[2]
m = json.load(open(f"{sub}/manifests/{task}/0.json"))
q = m["quanta"][0]
log = open(q["log"]).read()
checks = [float(x) for x in re.findall(r"FITS checked in ([0-9.]+) s", log)]
size = sum(o["size"] for o in q["outputs"]) / 1e6
print(f"{task:9s} attempt {m['attempt']}: quantum {q['seconds']:.2f} s, checks {sum(checks):.2f} s "
      f"({100 * sum(checks) / q['seconds']:.0f} % of the quantum; {size:.0f} MB of FITS in {len(checks)} file(s))")
PY
  done
done
post=$(ls "$work"/repo/datastore/demo/out/*/postISRCCD/*.fits | head -1)
/usr/bin/time -f "quanta fits check on one postISRCCD: %e s wall, %M KB peak" "$bin/quanta" fits check "$post" | cut -c1-160
