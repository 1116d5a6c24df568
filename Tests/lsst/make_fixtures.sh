#!/usr/bin/env bash
# Builds SQLite butler repositories and real `.qg` quantum graphs (pipetask qgraph) with the
# mock tasks of lsst.pipe.base.tests.mocks, for several pipeline shapes:
#
#   Tests/lsst/make_fixtures.sh [--force] VENV OUTDIR [SHAPE...]
#
#   chain    isr(visit,detector) -> calibrate(visit,detector) -> gather(visit)
#   prereq   isr with prerequisite inputs bias_like(detector) and flat_like(detector,
#            physical_filter) from their own RUN collection -> calibrate with prerequisite
#            camera_like(instrument); two input collections
#   fanout   characterize(visit,detector) writes three dataset types; measure and bkgmodel
#            consume different ones; gather(visit) reads both branches
#   many     the chain shape on 24 visits x 20 detectors: 984 quanta, so the graph has a
#            zstd compression_dict
#   bench    the chain shape at benchmark size: QUANTA_BENCH_VISITS (default 200) x
#            QUANTA_BENCH_DETECTORS (default 100), 2*V*D + V quanta (40,200); not in the default
#            list (scripts/bench-bps.sh builds it)
#
# For each shape: OUTDIR/SHAPE/{repo/, pipeline.yaml, graph.qg, info.json, *.log}. The output
# RUN is u/quanta/SHAPE/run and the output CHAINED collection u/quanta/SHAPE. A shape whose
# graph.qg and info.json exist is skipped unless --force. VENV comes from scripts/lsst-env.sh.
set -euo pipefail

usage="usage: Tests/lsst/make_fixtures.sh [--force] VENV OUTDIR [chain|prereq|fanout|many|bench ...]"
fail() { echo "make_fixtures: $*" >&2; exit 1; }

force=0
args=()
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) fail "unknown option '$a' ($usage)" ;;
    *) args+=("$a") ;;
  esac
done
[ ${#args[@]} -ge 2 ] || fail "$usage"
venv=${args[0]}
outdir=${args[1]}
shapes=("${args[@]:2}")
[ ${#shapes[@]} -gt 0 ] || shapes=(chain prereq fanout many)
for s in "${shapes[@]}"; do
  case "$s" in chain|prereq|fanout|many|bench) ;; *) fail "unknown shape '$s' ($usage)" ;; esac
done

py="$venv/bin/python"
pipetask="$venv/bin/pipetask"
[ -x "$py" ] && [ -x "$pipetask" ] ||
  fail "$venv is not an LSST venv (no bin/python or bin/pipetask); make one with scripts/lsst-env.sh"
mkdir -p "$outdir" || fail "cannot create $outdir"
outdir=$(cd "$outdir" && pwd)

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# run_step SHAPE STEP LOG CMD... : runs CMD with its output in LOG; names the step on failure.
run_step() {
  local shape=$1 step=$2 log=$3
  shift 3
  local rc=0
  "$@" >"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    tail -n 20 "$log" | sed 's/^/    /' >&2
    fail "$shape: step '$step' failed (exit $rc); full log: $log"
  fi
}

# ---------------------------------------------------------------------------------------------
# Repository maker, one Python process for all shapes (imports cost ~2.5 s). Each repo: SQLite
# registry + POSIX datastore, instrument Cam1 with V visits (ids 1001.., physical_filter
# alternating Cam1-r/Cam1-i, two day_obs) x D detectors, and one mock dataset per data ID for
# each input dataset type in its RUN collection. The files are written as `butler.put` would
# write them, then registered with `butler.ingest` (in place): 0.6 ms a dataset instead of 20.
# Argument: JSON list of {"shape", "repo", "visits", "detectors", "datasets": [{"name",
# "dimensions", "run"}], "chains": {name: [children]}}.
make_repos_py=$(cat <<'PY'
import json
import os
import sys
import time

import lsst.pipe.base.tests.mocks  # noqa: F401  (registers the _mock_* storage classes)
from lsst.daf.butler import Butler, CollectionType, DatasetRef, DatasetType, FileDataset
from lsst.pipe.base.tests.mocks import MockDataset, MockStorageClass

INST = "Cam1"


def make_repo(spec):
    visits = [1000 + v for v in range(1, spec["visits"] + 1)]
    detectors = list(range(spec["detectors"]))
    Butler.makeRepo(spec["repo"])
    with Butler.from_config(spec["repo"], writeable=True) as butler:
        registry = butler.registry
        registry.insertDimensionData(
            "instrument",
            dict(name=INST, visit_max=100000, visit_system=0, exposure_max=100000, detector_max=1000,
                 class_name="lsst.pipe.base.Instrument"),
        )
        registry.insertDimensionData(
            "physical_filter",
            dict(instrument=INST, name=f"{INST}-r", band="r"),
            dict(instrument=INST, name=f"{INST}-i", band="i"),
        )
        registry.insertDimensionData(
            "day_obs", dict(instrument=INST, id=20250101), dict(instrument=INST, id=20250102)
        )
        registry.insertDimensionData(
            "detector",
            *[dict(instrument=INST, id=d, full_name=f"R{d // 9:02d}_S{d % 9}", name_in_raft=f"S{d % 9}",
                   raft=f"R{d // 9:02d}", purpose="SCIENCE") for d in detectors],
        )
        half = (len(visits) + 1) // 2
        registry.insertDimensionData(
            "visit",
            *[dict(instrument=INST, id=v, name=f"v{v}", physical_filter=f"{INST}-{'ri'[n % 2]}",
                   day_obs=20250101 + (n >= half), seq_num=n, exposure_time=30.0)
              for n, v in enumerate(visits)],
        )
        # The visit<->detector join: without these rows no {visit, detector} data ID exists.
        registry.insertDimensionData(
            "visit_detector_region",
            *[dict(instrument=INST, visit=v, detector=d) for v in visits for d in detectors],
        )
        storage_class = MockStorageClass.get_or_register_mock("StructuredDataDict")
        n = 0
        for ds in spec["datasets"]:
            dataset_type = DatasetType(ds["name"], ds["dimensions"], storage_class, universe=butler.dimensions)
            registry.registerDatasetType(dataset_type)
            butler.collections.register(ds["run"], CollectionType.RUN)
            folder = os.path.join(spec["repo"], ds["run"], ds["name"])
            os.makedirs(folder, exist_ok=True)
            files = []
            for data_id in butler.query_data_ids(ds["dimensions"], limit=None, explain=False):
                ref = DatasetRef(dataset_type, data_id, run=ds["run"])
                mock = MockDataset(dataset_id=ref.id, dataset_type=dataset_type.to_simple(),
                                   data_id=dict(ref.dataId.mapping), run=ref.run)
                path = os.path.join(folder, "_".join([ds["name"], *map(str, data_id.required_values)]) + ".json")
                with open(path, "w") as f:
                    f.write(mock.model_dump_json())
                files.append(FileDataset(path=path, refs=[ref],
                                         formatter="lsst.daf.butler.formatters.json.JsonFormatter"))
            butler.ingest(*files, transfer=None)
            n += len(files)
        for chain, children in spec.get("chains", {}).items():
            butler.collections.register(chain, CollectionType.CHAINED)
            butler.collections.redefine_chain(chain, children)
    return len(visits), len(detectors), n


for spec in json.loads(sys.argv[1]):
    t0 = time.time()
    try:
        v, d, n = make_repo(spec)
    except Exception as err:
        print(f"FAILED {spec['shape']}: {type(err).__name__}: {err}", flush=True)
        raise
    print(f"repo {spec['shape']} {time.time() - t0:.1f} {v} visits x {d} detectors, {n} input datasets",
          flush=True)
PY
)

# Reads the graph's header (zipfile + zstandard only) and writes info.json.
write_info_py=$(cat <<'PY'
import json
import sys
import zipfile

import zstandard

shape, shape_dir = sys.argv[1], sys.argv[2]
graph = f"{shape_dir}/graph.qg"
with zipfile.ZipFile(graph) as zf:
    names = zf.namelist()
    cdict = zstandard.ZstdCompressionDict(zf.read("compression_dict")) if "compression_dict" in names else None
    dctx = zstandard.ZstdDecompressor(dict_data=cdict) if cdict else zstandard.ZstdDecompressor()
    header = json.loads(dctx.decompress(zf.read("header.json.zst")))
info = {
    "shape": shape,
    "repo": f"{shape_dir}/repo",
    "graph": graph,
    "pipeline": f"{shape_dir}/pipeline.yaml",
    "inputCollections": header["inputs"],
    "output": header["output"],
    "outputRun": header["output_run"],
    "quanta": header["n_quanta"],
    "datasets": header["n_datasets"],
    "tasks": header["n_task_quanta"],
    "compressionDict": cdict is not None,
}
with open(f"{shape_dir}/info.json", "w") as f:
    json.dump(info, f, indent=2)
    f.write("\n")
tasks = ", ".join(f"{k} {v}" for k, v in info["tasks"].items())
print(f"{info['quanta']} quanta ({tasks}){', compression_dict' if cdict else ''}")
PY
)

# ---------------------------------------------------------------------------------------------
# Pipelines. task NAME DIMS writes one DynamicTestPipelineTask; conn KIND NAME TYPE DIMS [multiple]
# adds a connection (KIND: inputs, prerequisite_inputs, outputs).
task() {
  printf '  %s:\n    class: lsst.pipe.base.tests.mocks.DynamicTestPipelineTask\n' "$1"
  printf '    config:\n      python: |\n'
  printf '        from lsst.pipe.base.tests.mocks import DynamicConnectionConfig as C\n'
  printf '        config.dimensions = [%s]\n' "$2"
}
conn() {
  local multiple=""
  [ "${5:-}" = multiple ] && multiple=", multiple=True"
  printf '        config.%s["%s"] = C(dataset_type_name="%s", dimensions=[%s]%s)\n' "$1" "$2" "$3" "$4" "$multiple"
}
VD='"instrument", "visit", "detector"'
V='"instrument", "visit"'

chain_pipeline() {
  echo "description: isr(visit,detector) -> calibrate(visit,detector) -> gather(visit)"
  echo "tasks:"
  task isr "$VD"
  conn inputs raw raw_like "$VD"
  conn outputs exposure postisr_like "$VD"
  task calibrate "$VD"
  conn inputs exposure postisr_like "$VD"
  conn outputs calexp calexp_like "$VD"
  task gather "$V"
  conn inputs calexps calexp_like "$VD" multiple
  conn outputs summary visit_summary_like "$V"
}

prereq_pipeline() {
  echo "description: isr(visit,detector) with prerequisite bias and flat -> calibrate(visit,detector) with prerequisite camera"
  echo "tasks:"
  task isr "$VD"
  conn inputs raw raw_like "$VD"
  conn prerequisite_inputs bias bias_like '"instrument", "detector"'
  conn prerequisite_inputs flat flat_like '"instrument", "detector", "physical_filter"'
  conn outputs exposure postisr_like "$VD"
  task calibrate "$VD"
  conn inputs exposure postisr_like "$VD"
  conn prerequisite_inputs camera camera_like '"instrument"'
  conn outputs calexp calexp_like "$VD"
}

fanout_pipeline() {
  echo "description: characterize writes icsrc_like, psf_like, bkg_like; measure reads icsrc+psf; bkgmodel reads bkg; gather(visit) reads both branches"
  echo "tasks:"
  task characterize "$VD"
  conn inputs raw raw_like "$VD"
  conn outputs icsrc icsrc_like "$VD"
  conn outputs psf psf_like "$VD"
  conn outputs background bkg_like "$VD"
  task measure "$VD"
  conn inputs icsrc icsrc_like "$VD"
  conn inputs psf psf_like "$VD"
  conn outputs src src_like "$VD"
  task bkgmodel "$VD"
  conn inputs background bkg_like "$VD"
  conn outputs skybkg skybkg_like "$VD"
  task gather "$V"
  conn inputs sources src_like "$VD" multiple
  conn inputs backgrounds skybkg_like "$VD" multiple
  conn outputs summary visit_summary_like "$V"
}

raw='{"name": "raw_like", "dimensions": ["instrument", "visit", "detector"], "run": "Cam1/raw/all"}'

# prepare_shape SHAPE: cleans OUTDIR/SHAPE, writes pipeline.yaml, appends the repo spec.
specs=()
prepare_shape() {
  local shape=$1 dir="$outdir/$1"
  local visits detectors datasets chains pipeline
  case "$shape" in
    chain)  visits=3;  detectors=4;  pipeline=chain_pipeline ;;
    prereq) visits=3;  detectors=3;  pipeline=prereq_pipeline ;;
    fanout) visits=2;  detectors=3;  pipeline=fanout_pipeline ;;
    many)   visits=24; detectors=20; pipeline=chain_pipeline ;;
    bench)  visits=${QUANTA_BENCH_VISITS:-200}; detectors=${QUANTA_BENCH_DETECTORS:-100}; pipeline=chain_pipeline ;;
  esac
  datasets="[$raw]"
  chains='{"Cam1/defaults": ["Cam1/raw/all"]}'
  if [ "$shape" = prereq ]; then
    datasets="[$raw,
      {\"name\": \"bias_like\", \"dimensions\": [\"instrument\", \"detector\"], \"run\": \"Cam1/calib/run1\"},
      {\"name\": \"flat_like\", \"dimensions\": [\"instrument\", \"detector\", \"physical_filter\"], \"run\": \"Cam1/calib/run1\"},
      {\"name\": \"camera_like\", \"dimensions\": [\"instrument\"], \"run\": \"Cam1/calib/camera\"}]"
    chains='{"Cam1/calib": ["Cam1/calib/run1", "Cam1/calib/camera"]}'
  fi
  rm -rf "$dir"
  mkdir -p "$dir" || fail "$shape: cannot create $dir"
  $pipeline > "$dir/pipeline.yaml"
  specs+=("$(printf '{"shape": "%s", "repo": "%s", "visits": %d, "detectors": %d, "datasets": %s, "chains": %s}' \
    "$shape" "$dir/repo" "$visits" "$detectors" "$datasets" "$chains")")
}

# build_graph SHAPE: pipetask qgraph, then info.json.
build_graph() {
  local shape=$1 dir="$outdir/$1" inputs=Cam1/defaults
  [ "$shape" = prereq ] && inputs=Cam1/raw/all,Cam1/calib
  local t1 t2
  t1=$(now)
  run_step "$shape" qgraph "$dir/qgraph.log" "$pipetask" --log-level WARNING qgraph \
    -b "$dir/repo" -i "$inputs" -o "u/quanta/$shape" --output-run "u/quanta/$shape/run" \
    -p "$dir/pipeline.yaml" --qgraph-datastore-records --save-qgraph "$dir/graph.qg"
  [ -s "$dir/graph.qg" ] || fail "$shape: step 'qgraph' wrote no graph (see $dir/qgraph.log)"
  t2=$(now)
  run_step "$shape" info "$dir/info.log" "$py" -c "$write_info_py" "$shape" "$dir"
  echo "make_fixtures: $shape: repo ${repo_secs[$shape]} s, qgraph $(secs "$t1" "$t2") s; $(tail -n 1 "$dir/info.log")"
}

start=$(now)
todo=()
for s in "${shapes[@]}"; do
  if [ $force -eq 0 ] && [ -f "$outdir/$s/graph.qg" ] && [ -f "$outdir/$s/info.json" ]; then
    echo "make_fixtures: $s: up to date ($outdir/$s/graph.qg; --force rebuilds)"
  else
    todo+=("$s")
  fi
done
if [ ${#todo[@]} -gt 0 ]; then
  for s in "${todo[@]}"; do prepare_shape "$s"; done
  spec_json="[$(IFS=,; echo "${specs[*]}")]"
  repos_log="$outdir/repos.log"
  rc=0
  t0=$(now)
  "$py" -c "$make_repos_py" "$spec_json" >"$repos_log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    tail -n 20 "$repos_log" | sed 's/^/    /' >&2
    failed=$(sed -n 's/^FAILED \([a-z]*\):.*/\1/p' "$repos_log" | head -1)
    fail "${failed:-${todo[*]}}: step 'repo' failed (exit $rc); full log: $repos_log"
  fi
  echo "make_fixtures: repos for ${todo[*]}: $(secs "$t0" "$(now)") s (one process; ~2.5 s of it imports)"
  declare -A repo_secs
  while read -r _ shape t _; do repo_secs[$shape]=$t; done < <(grep '^repo ' "$repos_log")
  for s in "${todo[@]}"; do
    cp "$repos_log" "$outdir/$s/repo.log"
    build_graph "$s"
  done
  rm -f "$repos_log"
fi
echo "make_fixtures: done in $(secs "$start" "$(now)") s: $outdir"
