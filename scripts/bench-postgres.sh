#!/usr/bin/env bash
# Merge throughput into SQLite and PostgreSQL (issue 18), release build:
#  1. one merge of 152,700 datasets (500 visits × 100 detectors, 102,700 one-quantum jobs whose
#     manifests `quanta bench simulate-run` writes), into a SQLite and a PostgreSQL registry;
#  2. N submissions of one campaign (default 8, 50 visits × 100 detectors each) merging at once
#     into one registry, each its own output run in one output chain.
# Needs the project's server (scripts/postgres.sh start) and PGPASSWORD.
#   scripts/bench-postgres.sh [--visits 500] [--concurrent 8] [--work /tmp/quanta-bench-pg]
set -euo pipefail
cd "$(dirname "$0")/.."
visits=500 concurrent=8 work=/tmp/quanta-bench-pg
while [ $# -gt 0 ]; do
  case "$1" in
    --visits) visits=$2; shift 2 ;;
    --concurrent) concurrent=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "usage: $0 [--visits N] [--concurrent N] [--work DIR]" >&2; exit 2 ;;
  esac
done
: "${PGPASSWORD:?set PGPASSWORD (scripts/postgres.sh: pg-test-secret-51)}"
swift build -c release --product quanta >/dev/null
bin=$(swift build -c release --show-bin-path)
url=$(scripts/postgres.sh url)
psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -1)
pg() { "$psql" "${url%%\?*}" -qtAc "$1" >/dev/null; }
rm -rf "$work"; mkdir -p "$work"

rate() {  # merge-summary.json → "N datasets: X/s into the registry, Y/s end to end"
  python3 -c "
import json, sys; d = json.load(open(sys.argv[1])); r = d['phaseSeconds']['registry']
print(f\"    {d['registered']} datasets in {d['seconds']:.2f} s: {d['registered'] / r:,.0f}/s into the registry ({r:.2f} s), {d['registered'] / d['seconds']:,.0f}/s end to end\")" "$1"
}

make_repo() {  # make_repo DIR sqlite|postgresql SCHEMA
  if [ "$2" = postgresql ]; then
    pg "DROP SCHEMA IF EXISTS $3 CASCADE"
    "$bin/quanta" repo create "$1" --registry "$url?schema=$3" >/dev/null
  else
    "$bin/quanta" repo create "$1" >/dev/null
  fi
}

for kind in sqlite postgresql; do
  d=$work/one-$kind
  make_repo "$d/repo" $kind bench_one
  "$bin/quanta" graph synth --visits "$visits" --detectors 100 --out "$d/g.qgn" --repo "$d/repo" >/dev/null
  "$bin/quanta" plan "$d/g.qgn" --repo "$d/repo" --config scripts/synth-commands.yaml --out "$d/sub" >/dev/null
  "$bin/quanta" bench simulate-run "$d/sub" 2>/dev/null >/dev/null
  echo "one merge into $kind ($visits visits × 100 detectors):"
  for i in 1 2 3; do
    QUANTA_PROGRESS=0 "$bin/quanta" merge "$d/sub" >/dev/null 2>&1
    rate "$d/sub/merge-summary.json"
    # The same datasets again next time: remove the run's rows, keep the files.
    if [ $kind = postgresql ]; then pg "DELETE FROM bench_one.dataset WHERE run = 'synth/run'"; pg "VACUUM bench_one.dataset"
    else python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"DELETE FROM dataset WHERE run='synth/run'\"); c.commit(); c.execute('VACUUM')" "$d/repo/registry.sqlite"; fi
  done
  QUANTA_PROGRESS=0 "$bin/quanta" merge "$d/sub" >/dev/null 2>&1
  echo "  again, every dataset already registered (a resumed merge):"; QUANTA_PROGRESS=0 "$bin/quanta" merge "$d/sub" >/dev/null 2>&1
  python3 -c "
import json, sys; d = json.load(open(sys.argv[1])); print(f\"    {d['alreadyRegistered']} already registered: {d['phaseSeconds']['registry']:.2f} s in the registry, {d['seconds']:.2f} s end to end\")" "$d/sub/merge-summary.json"
done

for kind in sqlite postgresql; do
  d=$work/many-$kind
  make_repo "$d/repo" $kind bench_many
  "$bin/quanta" graph synth --visits 50 --detectors 100 --out "$d/g.qgn" --repo "$d/repo" >/dev/null
  for i in $(seq 1 "$concurrent"); do
    "$bin/quanta" plan "$d/g.qgn" --repo "$d/repo" --config scripts/synth-commands.yaml --out "$d/sub$i" --output-run "synth/run$i" --output synth >/dev/null
    "$bin/quanta" bench simulate-run "$d/sub$i" 2>/dev/null >/dev/null
  done
  start=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$concurrent"); do QUANTA_PROGRESS=0 "$bin/quanta" merge "$d/sub$i" >"$d/merge$i.log" 2>&1 & pids+=($!); done
  failed=0; for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  end=$(date +%s.%N)
  python3 -c "
import glob, json, sys
d, n, kind, failed, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[6]) - float(sys.argv[5])
total = sum(json.load(open(f))['registered'] for f in glob.glob(d + '/sub*/merge-summary.json'))
print(f'{n} merges at once into {kind}: {total} datasets in {seconds:.2f} s wall, {total / seconds:,.0f}/s ({failed} failed)')" "$d" "$concurrent" "$kind" "$failed" "$start" "$end"
done
