#!/usr/bin/env bash
# Makes the seed corpus (corpus/<reader>/seed-*) from a small real submission, with the debug
# binaries: a synthetic .qgn, its snapshot, status cache and manifests after a local run, and a
# minimal .qg (make_qg.py). Regression inputs (crash-*) found by the fuzzer sit next to them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
Q=${QUANTA:-$here/../.build/debug/quanta}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$Q" graph synth --visits 2 --detectors 2 --patches 1 --patches-per-visit 1 --out g.qgn --repo repo >/dev/null
"$Q" plan g.qgn --repo repo --config "$here/../scripts/synth-commands.yaml" --out sub >/dev/null
QUANTA_PROGRESS=0 "$Q" run sub >/dev/null 2>&1
"$Q" status sub >/dev/null
python3 "$here/make_qg.py" t.qg
c=$here/corpus
mkdir -p "$c"/{qgn,qg,snapshot,status-cache,manifest}
cp g.qgn "$c/qgn/seed-synth.qgn"
cp t.qg "$c/qg/seed-minimal.qg"
cp sub/snapshot.bin "$c/snapshot/seed-synth.bin"
cp sub/status-cache.bin "$c/status-cache/seed-synth.bin"
for m in isr/0 gather/0 assembleCoadd/0; do cp "sub/manifests/$m.json" "$c/manifest/seed-${m%/0}.json"; done
# One quantum block as the .qg target's second reading sees it (decompressed JSON).
zstd -d -q -c < <(python3 -c 'import sys,struct; b=open(sys.argv[1],"rb").read(); i=b.index(b"\x28\xb5\x2f\xfd", b.index(b"quantum_datasets.mb")); sys.stdout.buffer.write(b[i:])' t.qg) 2>/dev/null | head -c 100000 > "$c/qg/seed-block.json" || true
ls -l "$c"/*
