#!/usr/bin/env python3
"""Writes a minimal pipe_base .qg (format version 1) for the fuzz seed corpus: a ZIP of stored
members, JSON compressed with the zstd command (no dictionary), two quantum blocks, one with a
datastore record. Usage: make_qg.py OUT.qg"""
import json, struct, subprocess, sys, zipfile

def zst(obj) -> bytes:
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=json.dumps(obj).encode(), capture_output=True, check=True).stdout

dims = ["instrument", "detector"]
header = {"version": 1, "graph_type": "predicted", "output_run": "u/fuzz/run", "inputs": ["raw/all"], "output": "u/fuzz",
          "user": "fuzz", "timestamp": "2026-01-01T00:00:00", "command": "pipetask qgraph", "n_quanta": 2, "n_datasets": 4,
          "n_task_quanta": {"isr": 2}, "metadata": {"data_query": "detector < 2", "butler_argument": "repo"}}
pipeline = {"dimensions": {"elements": {"instrument": {"requires": [], "implies": []},
                                        "detector": {"requires": ["instrument"], "implies": []}},
                           "skypix": {"htm": {"max_level": 2}}},
            "tasks": {"isr": {"index": 0, "dimensions": dims, "inputs": {"ccdExposure": {"dataset_type_name": "raw"}},
                              "outputs": {"outputExposure": {"dataset_type_name": "postISRCCD"}},
                              "metadata_output": {"dataset_type_name": "isr_metadata"}}},
            "dataset_types": {"raw": {"dimensions": dims, "storage_class": "Exposure"},
                              "postISRCCD": {"dimensions": dims, "storage_class": "Exposure"},
                              "isr_metadata": {"dimensions": dims, "storage_class": "TaskMetadata"}}}
blocks = b""
for d in range(2):
    raw, post, meta = (f"00000000-0000-4000-8000-00000000{d}{k}{k}{k}" for k in "123")
    block = {"quantum_id": f"00000000-0000-4000-8000-00000000{d}000", "task_label": "isr", "data_coordinate": ["Cam", d],
             "inputs": {"ccdExposure": [{"dataset_id": raw, "dataset_type_name": "raw", "data_coordinate": ["Cam", d], "run": "raw/all"}]},
             "outputs": {"outputExposure": [{"dataset_id": post, "dataset_type_name": "postISRCCD", "data_coordinate": ["Cam", d], "run": "u/fuzz/run"}],
                         "isr_metadata": [{"dataset_id": meta, "dataset_type_name": "isr_metadata", "data_coordinate": ["Cam", d], "run": "u/fuzz/run"}]},
             "datastore_records": {"FileDatastore@<butlerRoot>": {"records": {"file_datastore_records": {
                 raw.replace("-", ""): {"file_datastore_records": [{"path": f"raw/{d}.fits"}]}}}}} if d == 0 else {}}
    frame = zst(block)
    blocks += struct.pack(">q", len(frame)) + frame
with zipfile.ZipFile(sys.argv[1], "w", compression=zipfile.ZIP_STORED) as z:
    z.writestr("header.json.zst", zst(header))
    z.writestr("pipeline_graph.json.zst", zst(pipeline))
    z.writestr("quantum_datasets.mb", blocks)
