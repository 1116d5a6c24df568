#!/usr/bin/env python3
"""What a run left in a butler repository, for comparing Quanta with `pipetask run`:

    outcomes.py REPO RUN CHAIN [--summary S.json]

prints one JSON object:
  registered  sorted "type {k=v,...}" lines: every dataset in RUN, data IDs by required values
  ids         sorted "type uuid" lines
  chain       the children of the CHAINED collection CHAIN (null when it does not exist)
  sizes       file_datastore_records of RUN's datasets: {"records", "negative", "wrong"} — a record
              whose file_size is -1, or differs from the file's size on disk
  quanta      with --summary (pipetask's --summary JSON): {task: {status: count}}
"""
import argparse
import json
import os
import sqlite3
from collections import Counter

from lsst.daf.butler import Butler, MissingCollectionError


def main():
    p = argparse.ArgumentParser()
    p.add_argument("repo")
    p.add_argument("run")
    p.add_argument("chain")
    p.add_argument("--summary")
    a = p.parse_args()
    out = {}
    with Butler.from_config(a.repo) as butler:
        try:
            refs = list(butler.registry.queryDatasets(..., collections=a.run, findFirst=False))
        except MissingCollectionError:
            refs = []
        out["registered"] = sorted(
            f"{r.datasetType.name} {{{','.join(f'{k}={v}' for k, v in sorted(r.dataId.required.items()))}}}" for r in refs)
        out["ids"] = sorted(f"{r.datasetType.name} {r.id}" for r in refs)
        try:
            out["chain"] = list(butler.collections.get_info(a.chain).children)
        except MissingCollectionError:
            out["chain"] = None
    db = sqlite3.connect(os.path.join(a.repo, "gen3.sqlite3"))
    ids = {r.split(" ")[1].replace("-", "") for r in out["ids"]}
    sizes = {"records": 0, "negative": 0, "wrong": 0}
    for did, path, size in db.execute("select dataset_id, path, file_size from file_datastore_records"):
        key = did.hex() if isinstance(did, bytes) else str(did).replace("-", "")
        if key not in ids:
            continue
        sizes["records"] += 1
        full = path if path.startswith("/") else os.path.join(a.repo, path)
        if size is None or size < 0:
            sizes["negative"] += 1
        elif not os.path.exists(full) or os.path.getsize(full) != size:
            sizes["wrong"] += 1
    out["sizes"] = sizes
    if a.summary:
        with open(a.summary) as f:
            reports = json.load(f).get("quantaReports", [])
        counts = {}
        for r in reports:
            counts.setdefault(r.get("taskLabel"), Counter())[r.get("status")] += 1
        out["quanta"] = {k: dict(v) for k, v in counts.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
