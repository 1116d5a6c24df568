#!/usr/bin/env bash
# Quanta against LSST's `bps prepare` (ctrl_bps with the parsl plugin, Local site) on the same
# real `.qg` graph, in one run: wall time and peak RSS of each, unclustered (one job per quantum)
# and clustered (isr + calibrate of a visit in one job, gather per visit), then the ratios.
#
#   scripts/bench-bps.sh [--visits 200] [--detectors 100] [--runs 3] [--work DIR]
#
# The graph is the `bench` shape of Tests/lsst/make_fixtures.sh (the chain pipeline
# isr(visit,detector) -> calibrate(visit,detector) -> gather(visit): 2*V*D + V quanta, 40,200 by
# default), built with pipetask qgraph and cached per size in WORK/fixtures-VxD/bench/. The venv
# is WORK/venv-parsl: scripts/lsst-env.sh --bps, plus lsst-ctrl-bps-parsl and parsl==2025.12.1
# (newer parsl breaks ctrl_bps_parsl 30.2026.300). Configs, logs and the last run's submit
# directories go to WORK/bench-bps-VxD/. Uses the release binary .build/release/quanta as it is
# (build it first: swift build -c release). WORK defaults to $HOME/.cache/quanta/lsst-bench.
set -euo pipefail

usage="usage: scripts/bench-bps.sh [--visits N] [--detectors N] [--runs N] [--work DIR]"
fail() { echo "bench-bps: $*" >&2; exit 1; }
say() { echo "bench-bps: $*" >&2; }

visits=200 detectors=100 runs=3 work=$HOME/.cache/quanta/lsst-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --visits|--detectors|--runs|--work)
      [ $# -ge 2 ] || fail "$1 needs a value ($usage)"
      case "$1" in
        --visits) visits=$2 ;; --detectors) detectors=$2 ;; --runs) runs=$2 ;; --work) work=$2 ;;
      esac
      shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument '$1' ($usage)" ;;
  esac
done
for n in "$visits" "$detectors" "$runs"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || fail "'$n' is not a positive integer ($usage)"
done

root=$(cd "$(dirname "$0")/.." && pwd)
quanta="$root/.build/release/quanta"
[ -x "$quanta" ] || fail "no release binary at $quanta (build it: swift build -c release)"
command -v /usr/bin/time >/dev/null 2>&1 && /usr/bin/time -f %e true 2>/dev/null ||
  fail "/usr/bin/time (GNU time) is needed: apt-get install time"
mkdir -p "$work" || fail "cannot create $work"
work=$(cd "$work" && pwd)
size="${visits}x${detectors}"
bdir="$work/bench-bps-$size"
logs="$bdir/logs"
mkdir -p "$logs" || fail "cannot create $logs"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME LOG CMD... : runs CMD with its output in LOG; names the step and the log on failure.
step() {
  local name=$1 log=$2 rc=0
  shift 2
  "$@" >"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    tail -n 15 "$log" | sed 's/^/    /' >&2
    fail "step '$name' failed (exit $rc); log: $log"
  fi
}

# --- venv: lsst-env.sh --bps, then the parsl plugin ---------------------------------------------
t0=$(now)
venv="$work/venv-parsl"
rc=0
"$root/scripts/lsst-env.sh" --bps "$venv" >"$logs/venv.out" 2>"$logs/venv.log" || rc=$?
if [ $rc -ne 0 ]; then
  tail -n 15 "$logs/venv.log" | sed 's/^/    /' >&2
  fail "step 'venv (scripts/lsst-env.sh --bps)' failed (exit $rc); log: $logs/venv.log"
fi
venv=$(tail -n 1 "$logs/venv.out")
[ -x "$venv/bin/bps" ] || fail "step 'venv': no bps in $venv/bin; log: $logs/venv.log"
parsl_requirements=(lsst-ctrl-bps-parsl==30.2026.300 parsl==2025.12.1)
# Their dependencies, at the versions of the LSST kit's frozen list (the rest is held by
# lsst-env.sh's constraints, in the venv's quanta-constraints.txt).
parsl_constraints="charset-normalizer==3.5.2
dill==0.4.1
filelock==3.32.7
idna==3.20
pyzmq==27.3.0
requests==2.34.2
setproctitle==1.3.8
sortedcontainers==2.4.0
tblib==3.2.2
typeguard==4.6.0"
parsl_stamp="$venv/.quanta-bench-bps-parsl"
parsl_stamp_text="quanta bench-bps parsl v1
${parsl_requirements[*]}
$parsl_constraints"
if [ ! -f "$parsl_stamp" ] || [ "$(cat "$parsl_stamp")" != "$parsl_stamp_text" ]; then
  say "installing ${parsl_requirements[*]} into $venv (log: $logs/venv-parsl.log)"
  rm -f "$parsl_stamp"
  printf '%s\n' "$parsl_constraints" > "$venv/quanta-bench-parsl-constraints.txt"
  step "venv (pip install ${parsl_requirements[*]})" "$logs/venv-parsl.log" \
    "$venv/bin/python" -m pip install --no-compile --disable-pip-version-check \
      -c "$venv/quanta-constraints.txt" -c "$venv/quanta-bench-parsl-constraints.txt" "${parsl_requirements[@]}"
  step "venv (import check)" "$logs/venv-parsl-import.log" env -u PYTHONDONTWRITEBYTECODE "$venv/bin/python" -c '
import parsl, lsst.ctrl.bps.drivers, lsst.ctrl.bps.parsl.service, lsst.ctrl.bps.parsl.sites.local
from importlib.metadata import version
assert version("parsl") == "2025.12.1", version("parsl")'
  printf '%s\n' "$parsl_stamp_text" > "$parsl_stamp"
fi
venv_secs=$(secs "$t0" "$(now)")
versions=$("$venv/bin/python" - <<'PY'
from importlib.metadata import version
names = {"ctrl_bps": "lsst-ctrl-bps", "ctrl_bps_parsl": "lsst-ctrl-bps-parsl", "parsl": "parsl",
         "pipe_base": "lsst-pipe-base", "daf_butler": "lsst-daf-butler"}
print(", ".join(f"{k} {version(v)}" for k, v in names.items()))
PY
) ||
  fail "step 'venv': $venv/bin/python cannot report package versions"

# --- repo and graph (cached per size) ------------------------------------------------------------
fixtures="$work/fixtures-$size"
gdir="$fixtures/bench"
t0=$(now)
step "repo + graph (make_fixtures.sh bench)" "$logs/fixtures.log" \
  env QUANTA_BENCH_VISITS="$visits" QUANTA_BENCH_DETECTORS="$detectors" \
  "$root/Tests/lsst/make_fixtures.sh" "$venv" "$fixtures" bench
fixtures_secs=$(secs "$t0" "$(now)")
graph="$gdir/graph.qg" repo="$gdir/repo"
[ -s "$graph" ] && [ -f "$gdir/info.json" ] ||
  fail "step 'repo + graph': no $graph or info.json; log: $logs/fixtures.log"
if grep -q 'up to date' "$logs/fixtures.log"; then
  built="cached ($gdir)"
else
  # make_fixtures: bench: repo 12.3 s, qgraph 80.1 s; 40200 quanta (...)
  built="built in $fixtures_secs s: $(sed -n 's/^make_fixtures: bench: \(repo [0-9.]* s, qgraph [0-9.]* s\);.*/\1/p' "$logs/fixtures.log")"
fi
graph_line=$("$venv/bin/python" - "$gdir/info.json" <<'PY'
import json, os, sys
i = json.load(open(sys.argv[1]))
tasks = ", ".join(f"{k} {v:,}" for k, v in i["tasks"].items())
size = os.path.getsize(i["graph"]) / 1e6
print(f"{i['quanta']:,} quanta ({tasks}), {i['datasets']:,} datasets, {size:.1f} MB .qg")
PY
) || fail "cannot read $gdir/info.json"

# --- configs -------------------------------------------------------------------------------------
cat > "$bdir/cluster.yaml" <<'YAML'
# quanta plan --config: isr + calibrate of a visit in one job; gather stays one job per visit.
cluster:
  perVisit:
    pipetasks: isr, calibrate
    dimensions: visit
YAML
cat > "$bdir/bps.yaml" <<YAML
# bps prepare, parsl plugin, Local site, one job per quantum (bps defaults otherwise: no saved
# generic workflow or clustered graph). Needs CTRL_MPEXEC_DIR and DAF_BUTLER_DIR = the venv.
pipelineYaml: $gdir/pipeline.yaml
qgraphFile: $graph
wmsServiceClass: lsst.ctrl.bps.parsl.ParslService
computeSite: local
site:
  local:
    class: lsst.ctrl.bps.parsl.sites.Local
    cores: 2
operator: bench
project: dev
campaign: mock
payload:
  payloadName: bench
  butlerConfig: $repo
  inCollection: Cam1/defaults
  dataQuery: ""
requestMemory: 2048
requestCpus: 1
extraAggregateOptions: "--mock-storage-classes"
submitPath: $bdir/submit/bps
YAML
cat > "$bdir/bps-clustered.yaml" <<YAML
# bps.yaml with the same clusters as cluster.yaml.
includeConfigs:
  - $bdir/bps.yaml
submitPath: $bdir/submit/bps-clustered
clusterAlgorithm: lsst.ctrl.bps.quantum_clustering_funcs.dimension_clustering
cluster:
  perVisit:
    pipetasks: isr, calibrate
    dimensions: visit
YAML

# --- measurements --------------------------------------------------------------------------------
export CTRL_MPEXEC_DIR="$venv" DAF_BUTLER_DIR="$venv" REPO="$repo" PATH="$venv/bin:$PATH"
cd "$bdir"
declare -A walls peak jobs lastlog lastwall
keys=(quanta quanta-clustered bps bps-clustered)
declare -A label=(
  [quanta]="quanta plan"
  [quanta-clustered]="quanta plan --config cluster.yaml"
  [bps]="bps prepare (parsl)"
  [bps-clustered]="bps prepare (parsl), clustered"
)

# measure KEY RUN CMD... : one timed run; wall seconds and peak RSS (KB) from GNU time.
measure() {
  local key=$1 run=$2 log="$logs/$1.run$2.log" tfile="$logs/time" rc=0 wall kb
  shift 2
  /usr/bin/time -f "%e %M" -o "$tfile" "$@" >"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    tail -n 15 "$log" | sed 's/^/    /' >&2
    fail "step '${label[$key]}' (run $run) failed (exit $rc); log: $log"
  fi
  read -r wall kb < <(tail -n 1 "$tfile")
  walls[$key]="${walls[$key]:-} $wall"
  [ "${peak[$key]:-0}" -ge "$kb" ] || peak[$key]=$kb
  lastlog[$key]=$log lastwall[$key]=$wall
}

cat "$graph" > /dev/null   # the same warm page cache for every reader
bin_stamp=$(date -r "$quanta" '+%F %T')
for ((r = 1; r <= runs; r++)); do
  say "run $r/$runs"
  rm -rf "$bdir/submit"
  mkdir -p "$bdir/submit"
  measure quanta "$r" "$quanta" plan "$graph" --repo "$repo" --site local --out "$bdir/submit/quanta"
  measure quanta-clustered "$r" "$quanta" plan "$graph" --repo "$repo" --site local \
    --config "$bdir/cluster.yaml" --out "$bdir/submit/quanta-clustered"
  measure bps "$r" "$venv/bin/bps" --log-level INFO prepare "$bdir/bps.yaml"
  measure bps-clustered "$r" "$venv/bin/bps" --log-level INFO prepare "$bdir/bps-clustered.yaml"
done

# Jobs: quanta prints "N quanta in M jobs, ..."; bps "GenericWorkflow contains N job(s) (including final)".
for k in quanta quanta-clustered; do
  jobs[$k]=$(sed -n 's/.* quanta in \([0-9]*\) jobs.*/\1/p' "${lastlog[$k]}" | head -1)
done
for k in bps bps-clustered; do
  jobs[$k]=$(sed -n 's/.*GenericWorkflow contains \([0-9]*\) job(s).*/\1/p' "${lastlog[$k]}" | head -1)
done

# stats "w1 w2 ..." -> "min median"
stats() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END {
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f %.2f\n", v[1], m }'; }
declare -A mins meds
for k in "${keys[@]}"; do read -r mins[$k] meds[$k] < <(stats "${walls[$k]}"); done

# bps stage times from a log: "Acquire stage completed: Took 7.5012 seconds".
took() { sed -n "s/.*$2: Took \([0-9.]*\) seconds.*/\1/p" "$1" | tail -1; }
# stages KEY: the stages of the last run of KEY; "start-up" is the wall time outside them
# (interpreter start, imports, exit).
stages() {
  local log=${lastlog[$1]}
  awk -v w="${lastwall[$1]}" -v i="$(took "$log" "BPS configuration initialized and submit directory created")" \
      -v a="$(took "$log" "Acquire stage completed")" -v c="$(took "$log" "Completed copying quantum graph")" \
      -v b="$(took "$log" "Completed backing up quantum graph")" -v r="$(took "$log" "Completed reading quantum graph")" \
      -v cl="$(took "$log" "Cluster stage completed")" -v t="$(took "$log" "Transform stage completed")" \
      -v p="$(took "$log" "Prepare stage completed")" 'BEGIN {
    printf "start-up %.1f, init %.1f, acquire %.1f (graph copies %.1f, pipetask update-graph-run ~%.1f, read %.1f), cluster %.1f, transform %.1f, prepare %.1f s",
      w - i - a - cl - t - p, i, a, c + b, a - c - b - r, r, cl, t, p }'
}

# --- report --------------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "machine: $(nproc) cores ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB; quanta $(date -r "$quanta" '+%F %T') release build"
echo "bps:     $versions; venv $venv (ready in $venv_secs s)"
echo "graph:   $graph_line"
echo "         $size chain graph $graph; $built"
echo
printf '%-36s %7s  %-22s %8s\n' "what" "jobs" "wall s, min / median" "peak MB"
printf '%-36s %7s  %-22s %8s\n' "----" "----" "--------------------" "-------"
for k in "${keys[@]}"; do
  printf '%-36s %7s  %-22s %8d\n' "${label[$k]}" "${jobs[$k]:-?}" \
    "${mins[$k]} / ${meds[$k]}" "$((peak[$k] / 1024))"
done
echo "($runs run(s) each, interleaved; bps's jobs include its pipetaskInit and finalJob, Quanta's leave out its merge job)"
if [ "$runs" -gt 1 ]; then
  for k in "${keys[@]}"; do printf '  %-34s %s s\n' "${label[$k]}:" "${walls[$k]# }"; done
fi
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else printf "?" }'; }
echo "bps / quanta, unclustered: $(ratio "${meds[bps]}" "${meds[quanta]}")x time (median), $(ratio "${peak[bps]}" "${peak[quanta]}")x peak memory"
echo "bps / quanta, clustered:   $(ratio "${meds[bps-clustered]}" "${meds[quanta-clustered]}")x time (median), $(ratio "${peak[bps-clustered]}" "${peak[quanta-clustered]}")x peak memory"
echo
echo "bps stages, last run (s):"
echo "  unclustered: $(stages bps)"
echo "  clustered:   $(stages bps-clustered)"
echo "logs: $logs"
[ "$(date -r "$quanta" '+%F %T')" = "$bin_stamp" ] ||
  say "warning: $quanta was rebuilt during the runs ($bin_stamp -> $(date -r "$quanta" '+%F %T')); the quanta rows may mix two builds"
load=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$load" 'BEGIN { exit !(l > 1.5) }' &&
  say "warning: load average $load at the end; another process may have competed for the cores"
true
