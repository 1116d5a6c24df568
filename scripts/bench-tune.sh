#!/bin/bash
# Learned requests vs bps's defaults (issue 17): a synthetic workload whose isr step uses memory
# that depends on the data (detector d takes 40 + 25·d MB, so 40–265 MB over 10 detectors), run
# locally (run-quantum holds each job to its request, as SLURM's cgroup would):
#   A  bps's defaults: requestMemory 2048, memoryMultiplier 2, 2 retries
#   B  requests learned from A (quanta plan --learn-from A)
#   C  too small a guess: requestMemory 96 (out-of-memory retries at ×2)
#   D  requests learned from C (the out-of-memory attempts set the floor)
# For each: isr's memory efficiency (Σ wall × peak / Σ wall × request), its out-of-memory
# attempts, and the memory-hours it held.  usage: scripts/bench-tune.sh QUANTA_BIN_DIR
set -euo pipefail
here=$(dirname "$(realpath "$0")")
bin=$(realpath "${1:?usage: scripts/bench-tune.sh QUANTA_BIN_DIR}")
Q=$bin/quanta
W=${WORK:-/tmp/quanta-tune-bench}
rm -rf "$W" && mkdir -p "$W" && cd "$W"
$Q graph synth --visits 6 --detectors 10 --patches 2 --patches-per-visit 1 --out g.qgn --repo repo > /dev/null
python3 - "$here/synth-commands.yaml" <<'PY'
import sys
text = open(sys.argv[1]).read()
alloc = "python3 -c 'import time; b = b\\\"x\\\" * ((40 + 25 * {dim:detector}) << 20); time.sleep(0.3)' && "
open("cmd.yaml", "w").write(text.replace('isr: {command: "', 'isr: {command: "' + alloc, 1))
PY
printf 'includeConfigs: [cmd.yaml]\nrequestMemory: 2048\nmemoryMultiplier: 2\nnumberOfRetries: 2\n' > defaults.yaml
printf 'includeConfigs: [cmd.yaml]\nrequestMemory: 96\nmemoryMultiplier: 2\nnumberOfRetries: 3\n' > small.yaml
run() {  # name, plan args…
  local name=$1; shift
  $Q plan g.qgn --repo repo --output-run "bench/$name" --out "$name" "$@" > /dev/null
  QUANTA_PROGRESS=0 $Q run "$name" -j 2 > /dev/null 2>&1 || true
}
measure() {  # name
  python3 - "$1" <<'PY'
import glob, json, sys
name = sys.argv[1]
asked = used = 0.0; ooms = n = 0
for f in glob.glob(f"{name}/manifests/isr*/attempts/*.json"):
    m = json.load(open(f))
    n += 1
    peak = max([q.get("peakRSSKB") or 0 for q in m["quanta"]] + [0]) / 1024
    asked += m["seconds"] * (m.get("memoryLimitMB") or 0)
    used += m["seconds"] * peak
    ooms += m.get("failureClass") == "outOfMemory"
print(f"{name}: isr attempts {n}, out-of-memory {ooms}, memory efficiency {100 * used / max(asked, 1e-9):.0f} %, "
      f"memory held {asked / 1024 / 3600 * 1000:.2f} GB-h/1000, used {used / 1024 / 3600 * 1000:.2f} GB-h/1000")
PY
}
run A --config defaults.yaml;                 measure A
run B --config defaults.yaml --learn-from A;  measure B
run C --config small.yaml;                    measure C
run D --config small.yaml --learn-from C;     measure D
grep -h "requests from history: isr" B/plan.txt D/plan.txt
