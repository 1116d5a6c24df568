#!/usr/bin/env python3
"""Run one Quanta job's LSST quanta and report what they wrote.

    python3 run_job.py REPO GRAPH.qg --ids ID1,ID2,... --report REPORT.json [--summary S.json]
                       [--init-marker FILE]

Called by run-quantum inside the site's LSST environment. In ONE Python process:
1. once per submission (guarded by a lock next to --init-marker): `pipetask pre-exec-init-qbb`;
2. `pipetask run-qbb REPO GRAPH --qgraph-node-id IDS --summary S` — pipetask's own command, in-process;
3. every predicted output (and every input produced inside the graph) of every quantum is looked
   up through a quantum-backed butler (file templates predicted, existence checked on disk),
   because run-qbb exits 0 even when a quantum wrote nothing.
The report (JSON, written atomically) is what run-quantum turns into the job's manifest.
"""
import argparse
import fcntl
import json
import os
import sys
import time
import traceback
import uuid


def pipetask(args):
    """Runs a pipetask subcommand in this process; returns (exit code, error text).

    Without standalone mode click does not raise for ``ctx.exit(code)`` (which daf_butler's
    ``catch_and_exit`` calls when a quantum raised): ``main`` returns the code instead.
    """
    from lsst.ctrl.mpexec.cli.pipetask import cli

    try:
        rv = cli.main(args=args, prog_name="pipetask", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        return code, None if code == 0 else f"pipetask {args[0]} exited {code}"
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return code, None if code == 0 else f"pipetask {args[0]} exited {code}"
    except Exception as e:  # the quantum's own exception, or pipetask's
        traceback.print_exc()
        return 1, f"{type(e).__name__}: {e}"


def init_once(repo, graph, marker):
    """pre-exec-init-qbb exactly once per submission, whichever job gets here first."""
    if os.path.exists(marker):
        return None
    with open(marker + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(marker):
            return None
        code, err = pipetask(["pre-exec-init-qbb", repo, graph])
        if code != 0:
            return err or f"pre-exec-init-qbb exited {code}"
        tmp = f"{marker}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        os.replace(tmp, marker)
    return None


def summary_key(task, data_id):
    """How a summary entry without a quantumId is matched: task label and data ID (required values)."""
    return json.dumps([task, {str(k): v for k, v in sorted(dict(data_id).items())}], sort_keys=True, default=str)


def check(repo, graph, ids, summary_reports=()):
    """Predicted outputs and in-graph inputs of each quantum: path, existence, size; plus the
    run-qbb summary entry of each quantum, matched by quantumId or, when that is null (a quantum
    that raised reports none), by task label and data ID."""
    from lsst.daf.butler import QuantumBackedButler
    from lsst.pipe.base.quantum_graph import PredictedQuantumGraph

    pqg = PredictedQuantumGraph.read_execution_quanta(graph, ids)
    quanta = pqg.build_execution_quanta(ids)
    output_run = pqg.header.output_run if hasattr(pqg, "header") else None
    outputs = [r for q in quanta.values() for rs in q.outputs.values() for r in rs]
    produced = [r for q in quanta.values() for rs in q.inputs.values() for r in rs
                if output_run is None or r.run == output_run]
    refs = {r.id: r for r in outputs + produced}
    types = {r.datasetType.name: r.datasetType for r in refs.values()}
    qbb = QuantumBackedButler.from_predicted(
        repo, predicted_inputs=[], predicted_outputs=list(refs), dimensions=pqg.pipeline_graph.universe,
        datastore_records={}, dataset_types=types)
    uris = qbb.get_many_uris(list(refs.values()), predict=True)
    root = qbb.get_datastore_roots()
    root = next(iter(root.values())) if root else None

    def describe(ref):
        uri = uris[ref].primaryURI
        path = uri.relative_to(root) if root is not None else None
        exists = uri.exists()
        return {"id": str(ref.id), "type": ref.datasetType.name, "path": path or uri.ospath,
                "exists": exists, "size": uri.size() if exists else None}

    by_id, by_data_id = {}, {}
    for r in summary_reports:
        if r.get("quantumId"):
            by_id[str(r["quantumId"])] = r
        elif r.get("taskLabel") is not None:
            by_data_id[summary_key(r["taskLabel"], r.get("dataId") or {})] = r
    report = {}
    for qid, q in quanta.items():
        label = pqg.quantum_only_xgraph.nodes[qid]["task_label"]
        entry = by_id.get(str(qid)) or by_data_id.get(summary_key(label, q.dataId.required))
        report[str(qid)] = {
            "task": label,
            "summary": {k: v for k, v in entry.items() if k != "dataId"} if entry else None,
            "outputs": [describe(r) for rs in q.outputs.values() for r in rs],
            "producedInputs": [describe(r) for rs in q.inputs.values() for r in rs
                               if output_run is None or r.run == output_run],
        }
    return report


def clobber(repo, graph, failed, unknown):
    """What `pipetask run --extend-run --skip-existing --clobber-outputs` does before it reruns
    quanta, for the quanta a restart is about to run again: a quantum whose metadata exists
    succeeded and is skipped (`unknown` ids: their job left no manifest); any other quantum — and
    every one in `failed`, which Quanta's manifests say did not succeed — has its outputs removed:
    pruned from the registry (with their files) when registered, deleted when only on disk. So no
    file the registry vouches for is ever rewritten in place. Returns what was removed."""
    from lsst.daf.butler import Butler, QuantumBackedButler
    from lsst.pipe.base.quantum_graph import PredictedQuantumGraph

    ids = failed + unknown
    pqg = PredictedQuantumGraph.read_execution_quanta(graph, ids)
    quanta = pqg.build_execution_quanta(ids)
    refs = {r.id: r for q in quanta.values() for rs in q.outputs.values() for r in rs}
    qbb = QuantumBackedButler.from_predicted(
        repo, predicted_inputs=[], predicted_outputs=list(refs), dimensions=pqg.pipeline_graph.universe,
        datastore_records={}, dataset_types={r.datasetType.name: r.datasetType for r in refs.values()})
    uris = qbb.get_many_uris(list(refs.values()), predict=True)
    doomed = []
    for qid, q in quanta.items():
        label = pqg.quantum_only_xgraph.nodes[qid]["task_label"]
        outs = [r for rs in q.outputs.values() for r in rs]
        done = any(r.datasetType.name == f"{label}_metadata" and uris[r].primaryURI.exists() for r in outs)
        if qid in unknown and done:
            continue
        doomed += outs
    removed = {"pruned": [], "deleted": []}
    if not doomed:
        return removed
    with Butler.from_config(repo, writeable=True) as butler:
        registered = [ref for ref in (butler.get_dataset(r.id) for r in doomed) if ref is not None]
        if registered:
            butler.pruneDatasets(registered, disassociate=True, unstore=True, purge=True)
            removed["pruned"] = [f"{r.datasetType.name} {r.id}" for r in registered]
    for r in doomed:
        uri = uris[r].primaryURI
        if uri.exists():
            uri.remove()
            removed["deleted"].append(f"{r.datasetType.name} {r.id}")
    return removed


def fix_sizes(repo, run):
    """`butler transfer-from-graph` and `aggregate-graph` record file_size -1 (and no checksum) for
    every output, as the quantum-backed butler predicted them; `pipetask run` records the size the
    file has. This sets each -1 record of RUN's datasets to its file's size, in one transaction."""
    from lsst.daf.butler import Butler

    started = time.time()
    with Butler.from_config(repo, writeable=True) as butler:
        datastore = butler._datastore
        table, root = getattr(datastore, "_table", None), getattr(datastore, "root", None)
        if table is None or root is None:
            return {"fixed": 0, "note": f"{type(datastore).__name__} keeps no file records; sizes left as they are"}
        ids = [r.id for r in butler.registry.queryDatasets(..., collections=run, findFirst=False)]
        fixed = []
        for row in table.fetch(dataset_id=ids) if ids else ():
            if row["file_size"] is not None and row["file_size"] >= 0:
                continue
            path = row["path"]
            uri = root.join(path) if "://" not in path and not path.startswith("/") else type(root)(path)
            if not uri.exists():
                continue
            new = dict(row)
            new["file_size"] = uri.size()
            fixed.append(new)
        if fixed:
            with butler.transaction():
                table.replace(*fixed)
    return {"fixed": len(fixed), "datasets": len(ids), "seconds": round(time.time() - started, 2)}


def claim_run(repo, run, extend):
    """Claims an output RUN collection before a submission's jobs start: registers it, atomically in
    the registry, so two submissions given the same run name cannot both write into it (their merges
    would collide on init-outputs, leaving files unregistered). Returns a dict; "claimed" is False
    when the run already existed (allowed with extend, as pipetask's --extend-run)."""
    from lsst.daf.butler import Butler, CollectionType

    butler = Butler.from_config(repo, writeable=True) if hasattr(Butler, "from_config") else Butler(repo, writeable=True)
    created = butler.registry.registerRun(run)
    result = {"claimed": bool(created), "run": run}
    if not created:
        kind = butler.registry.getCollectionType(run)
        result["type"] = kind.name
        if kind is not CollectionType.RUN:
            result["error"] = f"collection {run} exists as {kind.name}, not RUN"
        try:
            result["datasets"] = len(list(butler.registry.queryDatasets(..., collections=[run], findFirst=False)))
        except Exception:
            pass
    return result


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "claim-run":
        p = argparse.ArgumentParser(prog="run_job.py claim-run", description=claim_run.__doc__.split("\n")[0])
        p.add_argument("repo")
        p.add_argument("run")
        p.add_argument("--extend", action="store_true")
        a = p.parse_args(sys.argv[2:])
        r = claim_run(a.repo, a.run, a.extend)
        print(json.dumps(r))
        return 0 if "error" not in r and (r["claimed"] or a.extend) else 3
    if len(sys.argv) > 1 and sys.argv[1] == "sizes":
        p = argparse.ArgumentParser(prog="run_job.py sizes", description=fix_sizes.__doc__.split("\n")[0])
        p.add_argument("repo")
        p.add_argument("run")
        a = p.parse_args(sys.argv[2:])
        print(json.dumps(fix_sizes(a.repo, a.run)))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "clobber":
        p = argparse.ArgumentParser(prog="run_job.py clobber", description=clobber.__doc__.split("\n")[0])
        p.add_argument("repo")
        p.add_argument("graph")
        p.add_argument("ids_file", help='JSON {"failed": [ids the manifests say did not succeed], '
                                        '"unknown": [ids of jobs that left no manifest]}')
        a = p.parse_args(sys.argv[2:])
        with open(a.ids_file) as f:
            ids = json.load(f)
        removed = clobber(a.repo, a.graph, [uuid.UUID(x) for x in ids.get("failed", [])],
                          [uuid.UUID(x) for x in ids.get("unknown", [])])
        print(json.dumps(removed))
        return 0

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("repo")
    p.add_argument("graph")
    p.add_argument("--ids", required=True, help="quantum ids, comma-separated")
    p.add_argument("--report", required=True)
    p.add_argument("--summary")
    p.add_argument("--init-marker")
    a = p.parse_args()
    ids = [uuid.UUID(x) for x in a.ids.split(",") if x]
    started = time.time()
    result = {"ids": [str(i) for i in ids], "initError": None, "runQbbExit": None, "runQbbError": None,
              "quanta": {}}
    if a.init_marker:
        result["initError"] = init_once(a.repo, a.graph, a.init_marker)
    reports = []
    if result["initError"] is None:
        args = ["run-qbb", a.repo, a.graph, "--qgraph-node-id", ",".join(str(i) for i in ids)]
        if a.summary:
            args += ["--summary", a.summary]
        result["runQbbExit"], result["runQbbError"] = pipetask(args)
        if a.summary and os.path.exists(a.summary):
            try:
                with open(a.summary) as f:
                    reports = json.load(f).get("quantaReports", [])
            except Exception as e:
                result["summaryError"] = str(e)
    try:
        result["quanta"] = check(a.repo, a.graph, ids, reports)
    except Exception as e:
        traceback.print_exc()
        result["checkError"] = f"{type(e).__name__}: {e}"
    result["seconds"] = time.time() - started
    tmp = f"{a.report}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, a.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
