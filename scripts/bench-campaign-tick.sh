#!/bin/bash
# 10 campaigns of 20 steps: step 1 a script held at a manual gate, 19 steps after it.
set -e
Q=$(realpath "${1:?usage: scripts/bench-campaign-tick.sh QUANTA_BINARY}")
rm -rf ${WORK:-/tmp/quanta-tick-bench} && mkdir -p ${WORK:-/tmp/quanta-tick-bench} && cd ${WORK:-/tmp/quanta-tick-bench}
$Q repo create repo > /dev/null
for c in $(seq 1 10); do
  { echo "name: c$c"; echo "repository: repo"; echo "schedule: '0 3 * * *'"; echo "steps:"
    echo "  - {name: s1, script: 'true', gate: manual}"
    for s in $(seq 2 20); do echo "  - {name: s$s, after: s$((s-1)), script: 'true'}"; done; } > c$c.yaml
  QUANTA_PROGRESS=0 $Q campaign run c$c.yaml --db db.sqlite > /dev/null || true
done
