"""Offline checks of the bps plugin's translation of `quanta status --json` and of the bps config.

    VENV/bin/python -m unittest discover -s python/tests     (needs lsst-ctrl-bps in VENV)
"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from lsst.ctrl.bps import BPS_DEFAULTS, BPS_SEARCH_ORDER, BpsConfig, WmsStates  # noqa: E402

from quanta_lsst import bps  # noqa: E402


def element(array, index, state, **kw):
    return {"array": array, "index": index, "state": state, "attempts": 1, **kw}


def status(tasks, elements, merge="not run", scheduler="SLURM (libslurm), 1 round, 4 sbatch calls"):
    quanta = {}
    for t in tasks:
        for s, n in t["counts"].items():
            quanta[s] = quanta.get(s, 0) + n
    return {"submission": "sub", "outputRun": "u/x/run", "tasks": tasks, "elements": elements,
            "arrays": {}, "arrayOrder": [], "merge": merge, "quanta": quanta, "scheduler": scheduler}


def task(label, **counts):
    return {"label": label, "counts": counts, "total": sum(counts.values())}


class OverallState(unittest.TestCase):
    def test_states(self):
        running = status([task("isr", succeeded=1, running=1)], [])
        self.assertEqual(bps.overall_state(running), WmsStates.RUNNING)
        queued = status([task("isr", pending=2)], [], merge="not run (final job 7 pending: Dependency)")
        self.assertEqual(bps.overall_state(queued), WmsStates.PENDING)
        merging = status([task("isr", succeeded=2)], [], merge="not run (final job 7 running)")
        self.assertEqual(bps.overall_state(merging), WmsStates.RUNNING)
        done = status([task("isr", succeeded=2)], [], merge="8 datasets registered in u/x/run")
        self.assertEqual(bps.overall_state(done), WmsStates.SUCCEEDED)
        # NoWorkFound is a success (issue 13), as pipetask counts it.
        no_work = status([task("isr", succeeded=1, noWork=1)], [], merge="5 datasets registered in u/x/run")
        self.assertEqual(bps.overall_state(no_work), WmsStates.SUCCEEDED)
        failed = status([task("isr", succeeded=1, failed=1), task("cal", blocked=1)], [],
                        merge="3 datasets registered in u/x/run")
        self.assertEqual(bps.overall_state(failed), WmsStates.FAILED)
        merge_failed = status([task("isr", succeeded=2)], [], merge="not run — final job 7 ended failed (exit 1)")
        self.assertEqual(bps.overall_state(merge_failed), WmsStates.FAILED)
        cancelled = status([task("isr", succeeded=1, cancelled=1)], [], scheduler="SLURM (cli), 1 round, cancelled")
        self.assertEqual(bps.overall_state(cancelled), WmsStates.DELETED)


class Report(unittest.TestCase):
    def test_summary_and_failures(self):
        st = status(
            [task("isr", succeeded=1, failed=1, pending=1), task("calibrate", blocked=1, pending=2)],
            [element("isr", 0, "succeeded"),
             element("isr", 1, "failed", failureClass="outOfMemory", exitCode=137, reason="killed {oom}\nmore",
                     slurmJob="12_1"),
             element("isr", 2, "pending", reason="Resources"),
             element("calibrate-1", 0, "pending", reason="Dependency"),
             element("calibrate-1", 1, "blocked", reason="missing input"),
             element("calibrate-2", 0, "pending", reason="Dependency")],
            merge="not run (final job 13 pending: Dependency)")
        r = bps.run_report("/bps", "/bps/quanta", st, {"name": "run1", "operator": "me"})
        self.assertEqual(r.state, WmsStates.RUNNING)
        self.assertEqual(r.run_summary, "isr:3;calibrate:3")
        self.assertEqual(r.total_number_jobs, 6)
        self.assertEqual(r.job_summary["isr"][WmsStates.FAILED], 1)
        self.assertEqual(r.job_summary["isr"][WmsStates.PENDING], 1)
        self.assertEqual(r.job_summary["calibrate"][WmsStates.PRUNED], 1)
        self.assertEqual(r.job_summary["calibrate"][WmsStates.UNREADY], 2)  # split arrays, waiting on isr
        self.assertEqual(r.job_summary["calibrate"][WmsStates.PENDING], 0)
        self.assertEqual(set(r.job_state_counts), set(WmsStates))
        self.assertEqual(r.exit_code_summary, {"isr": [137]})
        self.assertEqual((r.wms_id, r.path, r.label, r.operator), ("/bps", "/bps", "run1", "me"))
        self.assertIn("Merge: not run", str(r.specific_info))
        lines = bps.failure_lines(st)
        self.assertEqual(lines[0], "isr[1] (SLURM 12_1): outOfMemory, exit 137: killed {oom}")
        self.assertTrue(lines[1].startswith("calibrate-1[1]: blocked: missing input"))


class Config(unittest.TestCase):
    def test_submit_config(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bps.yaml")
            with open(path, "w") as f:
                f.write("""
wmsServiceClass: quanta_lsst.bps.QuantaService
computeSite: here
requestMemory: 1000
numberOfRetries: 2
pipetask:
  gather:
    requestMemory: 4096
    requestWalltime: "01:00:00"
    extraRunQuantumOptions: "--foo"
clusterAlgorithm: lsst.ctrl.bps.quantum_clustering_funcs.dimension_clustering
cluster:
  perVisit:
    pipetasks: isr, calibrate
    dimensions: visit
    requestMemory: 3000
site:
  here:
    requestCpus: 2
payload:
  payloadName: x
  butlerConfig: /repo
""")
            config = BpsConfig(path, search_order=BPS_SEARCH_ORDER, defaults=BPS_DEFAULTS)
            out = bps.submit_config(config)
        self.assertEqual(out["requestMemory"], 1000)
        self.assertEqual(out["requestCpus"], 2)  # from site.<computeSite>, as bps searches it
        self.assertEqual(out["numberOfRetries"], 2)
        self.assertEqual(out["retryUnlessExit"], [1, 2])  # bps's default
        self.assertEqual(out["pipetask"], {"gather": {"requestMemory": 4096, "requestWalltime": "01:00:00"}})
        self.assertEqual(out["cluster"], {"perVisit": {"pipetasks": "isr, calibrate", "dimensions": "visit",
                                                       "requestMemory": 3000}})
        # bps's defaults size its own final job (requestCpus 16, requestMemory 32768): not copied.
        self.assertNotIn("finalJob", out)
        # Without dimension clustering bps ignores cluster.*, and so does the plugin.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bps.yaml")
            with open(path, "w") as f:
                f.write("wmsServiceClass: quanta_lsst.bps.QuantaService\ncluster:\n  perVisit:\n    pipetasks: isr\n    dimensions: visit\n")
            out = bps.submit_config(BpsConfig(path, search_order=BPS_SEARCH_ORDER, defaults=BPS_DEFAULTS))
        self.assertNotIn("cluster", out)
        # What the person wrote under finalJob is copied; bps's defaults beside it are not.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bps.yaml")
            with open(path, "w") as f:
                f.write("wmsServiceClass: quanta_lsst.bps.QuantaService\nfinalJob:\n  requestMemory: 4096\n"
                        "  requestWalltime: '00:30:00'\n  queue: merge\n")
            out = bps.submit_config(BpsConfig(path, search_order=BPS_SEARCH_ORDER, defaults=BPS_DEFAULTS))
        self.assertEqual(out["finalJob"], {"requestMemory": 4096, "requestWalltime": "00:30:00", "queue": "merge"})

    def test_resolve_dirs(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "quanta"))
            open(os.path.join(tmp, "quanta", "plan.json"), "w").close()
            open(os.path.join(tmp, bps.NOTE_FILE), "w").close()
            self.assertEqual(bps.resolve_dirs(tmp), (tmp, os.path.join(tmp, "quanta")))
            self.assertEqual(bps.resolve_dirs(os.path.join(tmp, "quanta")), (tmp, os.path.join(tmp, "quanta")))
            with self.assertRaises(bps.QuantaError):
                bps.resolve_dirs(os.path.join(tmp, "nowhere"))


if __name__ == "__main__":
    unittest.main()
