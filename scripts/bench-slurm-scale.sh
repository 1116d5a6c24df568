#!/usr/bin/env bash
# Issue 6's SLURM scale run: a DRP-shaped graph of trivial quanta (default 20,540: 100 visits ×
# 100 detectors) clustered into jobs, submitted to the local cluster of scripts/slurm-cluster.sh,
# waited for until merged. Prints quanta, jobs, arrays, sbatch calls, the controller's RPC counts
# (sdiag, before → after), wall time, and status/merge times on the real manifests.
#   scripts/bench-slurm-scale.sh [--visits 100] [--detectors 100] [--backend libslurm|cli] [--work DIR]
# Needs: scripts/slurm-cluster.sh start (as root). Release build (static stdlib, as bench.sh).
set -euo pipefail
visits=100 detectors=100 backend=libslurm work=/tmp/quanta-slurm-scale
while [ $# -gt 0 ]; do
  case "$1" in
    --visits) visits=$2; shift 2 ;;
    --detectors) detectors=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "usage: $0 [--visits N] [--detectors N] [--backend libslurm|cli] [--work DIR]" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
root=$PWD
export PATH=/opt/swift/usr/bin:$PATH
sinfo -h >/dev/null 2>&1 || { echo "bench-slurm-scale: the SLURM cluster is not up; run: scripts/slurm-cluster.sh start" >&2; exit 1; }
swift build -c release --static-swift-stdlib >/dev/null
bin=$(swift build -c release --static-swift-stdlib --show-bin-path)
rm -rf "$work"; mkdir -p "$work"; cd "$work"
"$bin/quanta" repo create repo >/dev/null
"$bin/quanta" graph synth --visits "$visits" --detectors "$detectors" --out g.qgn --repo repo | sed 's/^/  /'
{ cat "$root/scripts/synth-commands.yaml"; cat <<'YAML'
requestMemory: 256
cluster:
  visitChain: {pipetasks: "isr, calibrate", dimensions: visit}
  warps: {pipetasks: makeWarp, dimensions: visit}
  coadds: {pipetasks: "assembleCoadd, detectCoadd", dimensions: "patch, band"}
YAML
} > submit.yaml
rpc() {  # rpc NAME: the controller's count for one RPC type
  sdiag 2>/dev/null | awk -v n="$1" '$1 == n { sub(/.*count:/, ""); print $1 + 0; found = 1 } END { if (!found) print 0 }'
}
rpcs="REQUEST_SUBMIT_BATCH_JOB REQUEST_JOB_INFO REQUEST_JOB_INFO_SINGLE REQUEST_COMPLETE_BATCH_SCRIPT REQUEST_UPDATE_JOB REQUEST_KILL_JOB"
declare -A before
for r in $rpcs; do before[$r]=$(rpc "$r"); done
total_before=$(sdiag 2>/dev/null | sed -n '/by message type/,/by user/p' | grep -o 'count:[0-9]*' | cut -d: -f2 | paste -sd+ | bc)
start=$(date +%s.%N)
set +e
"$bin/quanta" submit g.qgn --repo repo --config submit.yaml --site local-slurm --out sub --backend "$backend" --poll 2 --wait > submit.log 2>&1
rc=$?
set -e
end=$(date +%s.%N)
tail -3 submit.log | sed 's/^/  /'
[ $rc -eq 0 ] || { echo "bench-slurm-scale: submit --wait exited $rc; see $work/submit.log" >&2; exit 1; }
total_after=$(sdiag 2>/dev/null | sed -n '/by message type/,/by user/p' | grep -o 'count:[0-9]*' | cut -d: -f2 | paste -sd+ | bc)
echo "machine: $(nproc) cores; SLURM $(sinfo -V | awk '{print $2}'), MaxArraySize $(scontrol show config | awk '/^MaxArraySize/ {print $3}'), MaxJobCount $(scontrol show config | awk '/^MaxJobCount/ {print $3}')"
grep -E "quanta in .* jobs" sub/plan.txt | sed 's/^ */plan: /'
awk -v s="$start" -v e="$end" 'BEGIN { printf "submit → merged: %.1f s\n", e - s }'
"$bin/quanta" status sub --backend "$backend" | grep -E "sbatch calls|Merge" | sed 's/^/status: /'
echo "controller RPCs during the run (sdiag, all types): $((total_after - total_before))"
for r in $rpcs; do printf '  %-32s %6d\n' "$r" $(( $(rpc "$r") - ${before[$r]} )); done
/usr/bin/time -f "quanta status: %e s, %M KB" "$bin/quanta" status sub --backend "$backend" >/dev/null
grep -E '"(registered|seconds)"' sub/merge-summary.json | tr -d ' ,' | sed 's/^/merge-summary: /'
