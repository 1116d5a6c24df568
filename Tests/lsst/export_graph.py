#!/usr/bin/env python3
"""Print what pipe_base's own API says about every quantum of a predicted quantum graph (.qg).

    python Tests/lsst/export_graph.py GRAPH.qg [--execution] [--records]

Run it with the LSST venv's python (scripts/lsst-env.sh). Output: JSON lines, one per quantum,
sorted by quantum id, then a summary line:

    {"id": "<uuid>", "task": "<label>", "dataId": [["instrument", "Cam1"], ["detector", 0], ...],
     "inputs": [{"id": ..., "type": ..., "dataId": [...], "run": ...}, ...], "outputs": [...]}
    {"summary": {"quanta": N, "outputRun": "...", "tasks": {"<label>": N, ...}}}

dataId: the data coordinate as (dimension, value) pairs, required dimensions then implied ones,
each in the dimension universe's order (DimensionGroup.data_coordinate_keys). inputs/outputs:
every distinct dataset of every connection (prerequisites included; `<label>_metadata` and
`<label>_log` included; init-inputs/outputs are not per-quantum and are left out), sorted by
(type, id). `type` is the parent dataset type name, `run` its RUN collection.

By default the graph is read through PredictedQuantumGraph's networkx views (no task code is
imported, so any graph can be exported). --execution instead builds the
lsst.daf.butler.Quantum objects an executor runs (PredictedQuantumGraph.build_execution_quanta:
imports the task classes and attaches dimension records) and exports those. --records adds a
"records" list per quantum: the datastore records of its existing inputs.

Tests/lsst/dump_raw.py prints the same lines from the raw file; the two must agree.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import uuid
import warnings


def data_id_pairs(data_id) -> list[list]:
    """(dimension, value) pairs in DataCoordinate order: required, then implied."""
    return [[name, data_id[name]] for name in data_id.dimensions.data_coordinate_keys]


def ref_line(dataset_id, type_name: str, data_id, run: str) -> dict:
    return {"id": str(dataset_id), "type": type_name, "dataId": data_id_pairs(data_id), "run": run}


def records_of(datastore_records) -> list[dict]:
    """Flatten {datastore: DatastoreRecordData} into one list sorted by (id, path)."""
    result = []
    for datastore_name, record_data in datastore_records.items():
        for dataset_id, by_table in record_data.records.items():
            for infos in by_table.values():
                for info in infos:
                    result.append({
                        "id": str(dataset_id),
                        "datastore": datastore_name,
                        "path": info.path,
                        "formatter": info.formatter,
                        "storageClass": info.storage_class_name,
                        "component": info.component,
                        "checksum": info.checksum,
                        "fileSize": info.file_size,
                    })
    return sorted(result, key=lambda r: (r["id"], r["path"]))


def sort_refs(refs: list[dict]) -> list[dict]:
    return sorted(refs, key=lambda r: (r["type"], r["id"]))


def export(path: str, execution: bool, with_records: bool) -> list[dict]:
    from lsst.daf.butler import DatasetType
    from lsst.pipe.base.pipeline_graph import TaskImportMode
    from lsst.pipe.base.quantum_graph import PredictedQuantumGraph

    import_mode = TaskImportMode.ASSUME_CONSISTENT_EDGES if execution else TaskImportMode.DO_NOT_IMPORT
    with PredictedQuantumGraph.open(path, import_mode=import_mode) as reader:
        reader.read_thin_graph()
        if execution:
            reader.read_execution_quanta()  # init quanta + dimension records + all quantum blocks
        else:
            reader.read_quantum_datasets()
        blocks = reader.components.quantum_datasets
        graph = reader.finish()

    lines = []
    if execution:
        quanta = graph.build_execution_quanta()
        for quantum_id, quantum in quanta.items():
            task_label = graph.quantum_only_xgraph.nodes[quantum_id]["task_label"]
            sides = []
            for side in (quantum.inputs, quantum.outputs):
                refs = {}
                for dataset_type, dataset_refs in side.items():
                    for ref in dataset_refs:
                        # Execution dataset types are adapted to the task (storage class overrides,
                        # components); the graph records the parent type.
                        parent, _ = DatasetType.splitDatasetTypeName(ref.datasetType.name)
                        refs[ref.id] = ref_line(ref.id, parent, ref.dataId, ref.run)
                sides.append(sort_refs(list(refs.values())))
            line = {"id": str(quantum_id), "task": task_label, "dataId": data_id_pairs(quantum.dataId),
                    "inputs": sides[0], "outputs": sides[1]}
            if with_records:
                # Quantum.datastore_records also carries the task's init-input records; keep only
                # those of this quantum's own inputs, as the graph file stores them.
                input_ids = {r["id"] for r in sides[0]}
                line["records"] = [r for r in records_of(quantum.datastore_records) if r["id"] in input_ids]
            lines.append(line)
    else:
        xgraph = graph.bipartite_xgraph
        for quantum_id in graph.quantum_only_xgraph.nodes:
            node = xgraph.nodes[quantum_id]
            sides = []
            for neighbours in (xgraph.predecessors(quantum_id), xgraph.successors(quantum_id)):
                refs = []
                for dataset_id in neighbours:
                    d = xgraph.nodes[dataset_id]
                    refs.append(ref_line(dataset_id, d["dataset_type_name"], d["data_id"], d["run"]))
                sides.append(sort_refs(refs))
            line = {"id": str(quantum_id), "task": node["task_label"], "dataId": data_id_pairs(node["data_id"]),
                    "inputs": sides[0], "outputs": sides[1]}
            if with_records:
                line["records"] = records_of(blocks[quantum_id].deserialize_datastore_records())
            lines.append(line)

    lines.sort(key=lambda line: uuid.UUID(line["id"]).int)
    counts = {label: 0 for label in graph.pipeline_graph.tasks}
    for line in lines:
        counts[line["task"]] += 1
    lines.append({"summary": {"quanta": len(lines), "outputRun": graph.header.output_run, "tasks": counts}})
    return lines


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends us quietly
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    unknown = flags - {"--execution", "--records", "--help"}
    if "--help" in flags:
        print(__doc__.strip())
        return 0
    if len(args) != 1 or unknown:
        print("usage: export_graph.py GRAPH.qg [--execution] [--records]", file=sys.stderr)
        return 2
    # Only errors on stderr: the middleware's warnings and log messages are not ours to show.
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR)
    try:
        lines = export(args[0], "--execution" in flags, "--records" in flags)
    except Exception as err:  # one line, naming the file
        print(f"export_graph: {args[0]}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    out = sys.stdout
    for line in lines:
        out.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
