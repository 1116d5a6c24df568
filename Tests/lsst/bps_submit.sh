#!/usr/bin/env bash
# `bps submit` through Quanta's ctrl_bps plugin (quanta_lsst.bps.QuantaService) on the local
# SLURM cluster, end to end, with the real LSST middleware:
#
#   Tests/lsst/bps_submit.sh [--only plain|clustered|parsl] VENV FIXTURES WORKDIR
#
# 1. `scripts/lsst-env.sh --bps VENV`: lsst-ctrl-bps and this checkout's python/ in the venv;
#    then the plugin's unit tests (python/tests, offline);
# 2. a private copy of the `chain` fixture repo (FIXTURES/chain from Tests/lsst/make_fixtures.sh),
#    a Quanta site YAML for the local SLURM cluster whose jobs source the venv, and bps YAMLs
#    that differ from a stock one only by `wmsServiceClass` (+ `quantaSite`);
# 3. per variant -- `plain` (one quantum a job), `clustered` (dimension_clustering: isr +
#    calibrate of a visit in one job) and `parsl` (a config written for the Parsl plugin: no
#    quantaSite, computeSite: slurm with a Parsl site.slurm block, only wmsServiceClass changed)
#    -- `bps submit`, then `bps report` every few seconds until
#    the run ends, then `bps status` (its exit code is the state);
# 4. `butler query-datasets` on the output run must list every output the graph predicts (by
#    UUID; plus the init-outputs), and the output CHAINED collection must lead with the run.
#
# Needs the cluster up (scripts/slurm-cluster.sh start) and quanta: $QUANTA_BIN, else `quanta`
# on PATH, else this checkout's newest .build/{release,debug}/quanta. WORKDIR is wiped and
# reused on every run (only if this script made it, or it is empty). Exits non-zero with the
# reason on any failure, after cancelling what it submitted. Timings go to stdout.
# Environment: QUANTA_BPS_TIMEOUT (seconds a run may take, default 900), QUANTA_BPS_POLL (5).
set -euo pipefail

usage="usage: Tests/lsst/bps_submit.sh [--only plain|clustered|parsl] VENV FIXTURES WORKDIR"
fail() { echo "bps_submit: FAILED: $*" >&2; exit 1; }
say() { echo "bps_submit: $*"; }

variants=(plain clustered parsl)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --only) [ $# -ge 2 ] || fail "--only needs plain, clustered or parsl"; variants=("$2"); shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) fail "unknown option '$1' ($usage)" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -eq 3 ] || fail "$usage"
for v in "${variants[@]}"; do case "$v" in plain|clustered|parsl) ;; *) fail "unknown variant '$v' ($usage)" ;; esac; done

root=$(cd "$(dirname "$0")/../.." && pwd)
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
venv=$(abspath "${args[0]}")
fixtures=$(abspath "${args[1]}")
work=$(abspath "${args[2]}")
timeout=${QUANTA_BPS_TIMEOUT:-900}
poll=${QUANTA_BPS_POLL:-5}
service=quanta_lsst.bps.QuantaService

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

# --- checks and setup ---------------------------------------------------------------------------
[ -f "$fixtures/chain/graph.qg" ] && [ -d "$fixtures/chain/repo" ] && [ -f "$fixtures/chain/pipeline.yaml" ] ||
  fail "$fixtures/chain has no repo/graph.qg/pipeline.yaml; make it with Tests/lsst/make_fixtures.sh VENV $fixtures chain"
"$root/scripts/slurm-cluster.sh" status >/dev/null 2>&1 ||
  fail "the local SLURM cluster is not usable ('scripts/slurm-cluster.sh status'); start it with scripts/slurm-cluster.sh start"

if [ -z "${QUANTA_BIN:-}" ]; then
  if command -v quanta >/dev/null 2>&1; then
    QUANTA_BIN=$(command -v quanta)
  else
    for b in "$root/.build/release/quanta" "$root/.build/debug/quanta"; do
      [ -x "$b" ] || continue
      if [ -z "${QUANTA_BIN:-}" ] || [ "$b" -nt "$QUANTA_BIN" ]; then QUANTA_BIN=$b; fi
    done
  fi
fi
[ -n "${QUANTA_BIN:-}" ] && [ -x "$QUANTA_BIN" ] ||
  fail "no quanta executable: set QUANTA_BIN, put quanta on PATH, or build this checkout (swift build)"
export QUANTA_BIN
say "quanta: $QUANTA_BIN"

t0=$(now)
"$root/scripts/lsst-env.sh" --bps "$venv" >/dev/null || fail "scripts/lsst-env.sh --bps $venv failed (see above)"
t_env=$(secs "$t0" "$(now)")
bps="$venv/bin/bps"
butler="$venv/bin/butler"

# The plugin's offline checks first (status/config translation; a second, no cluster needed).
t0=$(now)
"$venv/bin/python" -m unittest discover -s "$root/python/tests" >"${TMPDIR:-/tmp}/quanta-bps-unittest.$$.log" 2>&1 ||
  { cat "${TMPDIR:-/tmp}/quanta-bps-unittest.$$.log" >&2; fail "python/tests (the plugin's unit tests) failed"; }
say "plugin unit tests: $(grep -oE '^Ran [0-9]+ tests?' "${TMPDIR:-/tmp}/quanta-bps-unittest.$$.log") OK in $(secs "$t0" "$(now)") s"
rm -f "${TMPDIR:-/tmp}/quanta-bps-unittest.$$.log"

marker="$work/.quanta-bps-test"
if [ -d "$work" ] && [ -n "$(ls -A "$work" 2>/dev/null)" ]; then
  [ -f "$marker" ] || fail "$work exists, is not empty and was not made by this script; choose another WORKDIR"
  # An earlier run that was interrupted may still have jobs in SLURM: cancel them first.
  for d in "$work"/submit/*/quanta; do
    [ -f "$d/plan.json" ] && "$QUANTA_BIN" cancel "$d" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
fi
mkdir -p "$work" || fail "cannot create $work"
touch "$marker"
cp -a "$fixtures/chain/repo" "$work/repo" || fail "cannot copy $fixtures/chain/repo"

# A Quanta site for the local cluster (as site-configs/local-slurm.yaml) whose jobs use the venv.
cat > "$work/site.yaml" <<EOF
name: bps-local-slurm
scheduler: slurm
partitions:
  - name: debug
    nodes: 1
    coresPerNode: 8
    memoryPerNode: 8000
    maxWalltime: "02:00:00"
defaultPartition: debug
maxArraySize: 1001
umask: "0002"
environment:
  - source $venv/bin/activate
EOF

# A stock bps submit YAML (as for the parsl or HTCondor plugins); the plugin is the one line that
# switches it to Quanta, quantaSite names the site above (else computeSite is a Quanta site name).
write_bps_yaml() {  # VARIANT
  if [ "$1" = parsl ]; then
    # As a team has it for the Parsl plugin (their site block from the talk), wmsServiceClass changed.
    cat <<EOF
wmsServiceClass: $service
computeSite: slurm
site:
  slurm:
    class: lsst.ctrl.bps.parsl.sites.Slurm
    nodes: 7
    cores_per_node: 20
    mem_per_node: 100
    walltime: "48:00:00"
EOF
  else
    cat <<EOF
wmsServiceClass: $service
quantaSite: $work/site.yaml
computeSite: local-slurm
EOF
  fi
  # The Parsl team's config sets no project or campaign (bps report must still work), and gives
  # the repository, pipeline, collections and query on bps's command line (see run_variant).
  if [ "$1" = parsl ]; then
    cat <<EOF
operator: quanta-ci
submitPath: $work/submit/{uniqProcName}
payload:
  payloadName: chain-$1
EOF
  else
    cat <<EOF
pipelineYaml: $fixtures/chain/pipeline.yaml
operator: quanta-ci
project: quanta
campaign: bps-plugin-$1
submitPath: $work/submit/{uniqProcName}
payload:
  payloadName: chain-$1
  butlerConfig: $work/repo
  inCollection: Cam1/defaults
  output: u/quanta-ci/bps-$1
  dataQuery: ""
EOF
  fi
  cat <<EOF
requestMemory: 1024
numberOfRetries: 1
pipetask:
  gather:
    requestMemory: 1536
EOF
  if [ "$1" = clustered ]; then
    cat <<EOF
clusterAlgorithm: lsst.ctrl.bps.quantum_clustering_funcs.dimension_clustering
cluster:
  perVisit:
    pipetasks: isr, calibrate
    dimensions: visit
    requestMemory: 1536
EOF
  fi
}

# --- one bps submission -------------------------------------------------------------------------
run_id=""
cleanup() {
  if [ -n "$run_id" ]; then
    echo "bps_submit: cancelling $run_id" >&2
    (cd "$work" && "$bps" cancel --wms-service-class "$service" --id "$run_id" >&2) || true
  fi
}
trap cleanup EXIT

# report_state FILE: the STATE column of bps report's summary row.
report_state() {
  awk '/^---/ { getline; print; exit }' "$1" |
    grep -oE '\b(UNKNOWN|MISFIT|UNREADY|READY|PENDING|RUNNING|DELETED|HELD|SUCCEEDED|FAILED|PRUNED)\b' | head -1
}

declare -A T_SUBMIT T_RUN T_REPORT T_VERIFY STAGES RESULT
run_variant() {
  local v=$1 yaml="$work/bps-$1.yaml" log="$work/bps-$1-submit.log" rep="$work/bps-$1-report.txt"
  write_bps_yaml "$v" > "$yaml"
  say "[$v] $ (cd $work && bps submit $yaml)"
  local t0 t1 rc=0
  t0=$(now)
  # The venv is on PATH, as for a person who set up the stack: SLURM jobs inherit it (no site environment lines).
  # The parsl variant as the team types it: bps submit -b -p -i -o -d (two of the three visits).
  local flags=()
  [ "$v" = parsl ] && flags=(-b "$work/repo" -p "$fixtures/chain/pipeline.yaml" -i Cam1/defaults -o "u/quanta-ci/bps-$v" -d "visit IN (1001, 1002)")
  (cd "$work" && PATH="$venv/bin:$PATH" "$bps" --log-level INFO submit "${flags[@]}" "$yaml") >"$log" 2>&1 || rc=$?
  t1=$(now)
  T_SUBMIT[$v]=$(secs "$t0" "$t1")
  if [ $rc -ne 0 ]; then
    tail -n 25 "$log" | sed 's/^/    /' >&2
    fail "[$v] bps submit exited $rc (log: $log)"
  fi
  run_id=$(sed -n 's/^Run Id: //p' "$log" | tail -1)
  [ -n "$run_id" ] && [ -d "$run_id" ] || fail "[$v] bps submit printed no usable 'Run Id:' (log: $log)"
  STAGES[$v]=$(grep -oE '(Acquire|Cluster|Transform|Prepare|Submit) stage completed: Took [0-9.]+' "$log" |
    sed -E 's/ stage completed: Took ([0-9.]+)/ \1/' | awk '{ printf "%s%s %.2f s", (NR > 1 ? ", " : ""), tolower($1), $2 }')
  say "[$v] submitted in ${T_SUBMIT[$v]} s (${STAGES[$v]}); run id $run_id"
  # bps's own log shows what Quanta planned and the SLURM job ids it submitted.
  grep -q 'quanta plan: ' "$log" || fail "[$v] bps's log shows no plan summary from quanta (log: $log)"
  grep -qE 'quanta submit: +[^ ]+ +job [0-9]+' "$log" || fail "[$v] bps's log shows no SLURM job ids (log: $log)"

  # Poll bps report until the run has ended.
  local state="" last="" t_rep0 t_rep1
  while :; do
    t_rep0=$(now)
    rc=0
    (cd "$work" && "$bps" report --wms-service-class "$service" --id "$run_id") >"$rep" 2>&1 || rc=$?
    t_rep1=$(now)
    [ $rc -eq 0 ] || { cat "$rep" >&2; fail "[$v] bps report exited $rc"; }
    state=$(report_state "$rep")
    [ -n "$state" ] || { cat "$rep" >&2; fail "[$v] no STATE in bps report's output"; }
    local line
    line=$(awk '/^TOTAL/ { print "succeeded " $10 "/" $13 ", running " $7 ", pending " $6 ", waiting " $4 ", failed " $11 ", pruned " $12; exit }' "$rep")
    if [ "$state $line" != "$last" ]; then
      say "[$v]   +$(secs "$t1" "$t_rep1") s  $state  $line"
      last="$state $line"
    fi
    case "$state" in
      SUCCEEDED|FAILED|DELETED|PRUNED) break ;;
    esac
    if awk -v a="$t1" -v b="$(now)" -v t="$timeout" 'BEGIN { exit !(b - a > t) }'; then
      cat "$rep" >&2
      fail "[$v] not finished after $timeout s (QUANTA_BPS_TIMEOUT)"
    fi
    sleep "$poll"
  done
  T_RUN[$v]=$(secs "$t1" "$t_rep1")
  T_REPORT[$v]=$(secs "$t_rep0" "$t_rep1")
  if [ "$state" != SUCCEEDED ]; then
    cat "$rep" >&2
    "$QUANTA_BIN" status "$run_id/quanta" --all >&2 || true
    fail "[$v] the run ended $state"
  fi
  rc=0
  (cd "$work" && "$bps" status --wms-service-class "$service" --id "$run_id") >/dev/null 2>&1 || rc=$?
  [ $rc -eq 0 ] || fail "[$v] bps status exited $rc (0 = SUCCEEDED) after bps report said SUCCEEDED"

  # Outputs: every dataset the graph predicts is registered in the output run.
  t0=$(now)
  local graph
  graph=$(ls "$run_id"/*.qg 2>/dev/null | grep -v '_orig\.qg$' | head -1)
  [ -f "$graph" ] || fail "[$v] no .qg in $run_id"
  "$QUANTA_BIN" graph dump "$graph" > "$work/bps-$v-dump.jsonl" || fail "[$v] quanta graph dump $graph failed"
  local out_run
  out_run=$(tail -1 "$work/bps-$v-dump.jsonl" | python3 -c 'import json, sys; print(json.load(sys.stdin)["summary"]["outputRun"])') ||
    fail "[$v] no outputRun in quanta graph dump's summary"
  "$butler" query-datasets "$work/repo" --collections "$out_run" '*' > "$work/bps-$v-datasets.txt" 2>&1 ||
    { tail -n 20 "$work/bps-$v-datasets.txt" >&2; fail "[$v] butler query-datasets failed"; }
  local check
  check=$(python3 - "$work/bps-$v-dump.jsonl" "$work/bps-$v-datasets.txt" "$out_run" <<'PY'
import json, re, sys
dump, table, run = sys.argv[1:]
predicted = {}
for line in open(dump):
    q = json.loads(line)
    for o in q.get("outputs", []):
        predicted[o["id"]] = o["type"]
uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
registered = {}
for line in open(table):
    f = line.split()
    if len(f) >= 3 and f[1] == run and uuid.match(f[2]):
        registered[f[2]] = f[0]
missing = sorted(set(predicted) - set(registered))
extra = {i: t for i, t in registered.items() if i not in predicted}
init = {i: t for i, t in extra.items() if t.endswith("_config") or t == "packages"}
other = sorted(set(extra) - set(init))
print(f"{len(predicted)} {len(set(predicted) & set(registered))} {len(init)} {len(missing)} {len(other)}",
      ",".join(f"{predicted[i]}:{i}" for i in missing[:3]), ",".join(f"{extra[i]}:{i}" for i in other[:3]))
PY
) || fail "[$v] could not compare predicted and registered datasets"
  local n_pred n_ok n_init n_missing n_other
  read -r n_pred n_ok n_init n_missing n_other _ <<<"$check"
  [ "$n_pred" -gt 0 ] || fail "[$v] the graph predicts no outputs"
  [ "$n_missing" -eq 0 ] || fail "[$v] $n_missing of $n_pred predicted outputs are not in $out_run (e.g. $(echo "$check" | awk '{print $6}'))"
  [ "$n_other" -eq 0 ] || fail "[$v] $n_other datasets in $out_run that the graph does not predict (e.g. $(echo "$check" | awk '{print $7}'))"
  [ "$n_init" -gt 0 ] || fail "[$v] no init-outputs (<task>_config, packages) in $out_run"
  local output
  output=u/quanta-ci/bps-$v
  "$butler" query-collections "$work/repo" "$output" --chains TREE > "$work/bps-$v-chain.txt" 2>&1 ||
    { cat "$work/bps-$v-chain.txt" >&2; fail "[$v] butler query-collections $output failed"; }
  local first
  first=$(awk -v c="$output" '$1 == c && $2 == "CHAINED" { getline; print $1; exit }' "$work/bps-$v-chain.txt")
  [ "$first" = "$out_run" ] || { cat "$work/bps-$v-chain.txt" >&2; fail "[$v] $output does not lead with $out_run (first: '$first')"; }
  if [ "$v" = clustered ]; then
    grep -q 'perVisit' "$run_id/quanta_submit.yaml" || fail "[$v] the cluster section did not reach quanta ($run_id/quanta_submit.yaml)"
    "$QUANTA_BIN" status "$run_id/quanta" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert "perVisit" in s["arrayOrder"], s["arrayOrder"]' || fail "[$v] quanta planned no perVisit array"
  fi
  T_VERIFY[$v]=$(secs "$t0" "$(now)")
  RESULT[$v]="$n_ok/$n_pred predicted outputs + $n_init init-outputs in $out_run; chained into $output"
  say "[$v] SUCCEEDED: ${RESULT[$v]}"
  run_id=""
}

for v in "${variants[@]}"; do run_variant "$v"; done
trap - EXIT

echo
say "timings (seconds)"
printf '  %-10s %8s %14s %12s %8s  %s\n' variant "submit" "submit→done" "bps report" verify "bps submit stages"
for v in "${variants[@]}"; do
  printf '  %-10s %8s %14s %12s %8s  %s\n' "$v" "${T_SUBMIT[$v]}" "${T_RUN[$v]}" "${T_REPORT[$v]}" "${T_VERIFY[$v]}" "${STAGES[$v]}"
done
say "scripts/lsst-env.sh --bps: $t_env s; total $(secs "$t_start" "$(now)") s"
say "PASSED (${variants[*]})"
