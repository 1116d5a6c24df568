"""A ctrl_bps plugin that hands the workflow to Quanta (SLURM job arrays).

Switch an existing bps submit YAML with one line::

    wmsServiceClass: quanta_lsst.bps.QuantaService

and, optionally, ``quantaSite: /path/to/site.yaml`` (else ``computeSite`` names a Quanta site
config such as ``local-slurm``). Then ``bps submit``, ``bps report``, ``bps cancel`` and
``bps restart`` work as usual; for the last three tell bps which plugin to use
(``--wms-service-class quanta_lsst.bps.QuantaService`` or ``export
BPS_WMS_SERVICE_CLASS=quanta_lsst.bps.QuantaService``) and pass the submit directory bps printed
as ``--id``.

The plugin is thin on purpose: bps builds (or copies) the quantum graph and resolves the config;
everything else -- clustering into arrays, sbatch, retries, the merge into the butler, status --
is done by the ``quanta`` executable (``$QUANTA_BIN`` if set, else ``quanta`` on PATH).
"""

from __future__ import annotations

__all__ = ["QuantaError", "QuantaService", "QuantaWorkflow"]

import json
import logging
import os
import re
import shutil
import subprocess
import sys

from lsst.ctrl.bps.wms_service import (
    BaseWmsService,
    BaseWmsWorkflow,
    WmsRunReport,
    WmsSpecificInfo,
    WmsStates,
)

# Under "lsst.": bps's --log-level (INFO by default) applies to the lsst.* loggers only, and a
# logger named after this module stayed at WARNING, so bps's log showed nothing Quanta did.
_LOG = logging.getLogger("lsst.ctrl.bps.quanta")

# bps's default command templates start with ${CTRL_MPEXEC_DIR}/bin/pipetask and
# ${DAF_BUTLER_DIR}/bin/butler, variables that only the LSST stack's setup defines. Installed from
# PyPI, both tools live in this interpreter's bin/. bps imports this module while it reads the
# config, before any template is expanded, so defaulting them here is enough.
for _var, _tool in (("CTRL_MPEXEC_DIR", "pipetask"), ("DAF_BUTLER_DIR", "butler")):
    if not os.environ.get(_var) and os.access(os.path.join(sys.prefix, "bin", _tool), os.X_OK):
        os.environ[_var] = sys.prefix

# The submission's Quanta directory inside bps's submit directory, and the plugin's note there.
QUANTA_SUBDIR = "quanta"
NOTE_FILE = "quanta_bps.json"

# bps keys Quanta's submit config understands (see `quanta plan --help`).
RESOURCE_KEYS = (
    "requestMemory",
    "requestCpus",
    "requestWalltime",
    "numberOfRetries",
    "retryUnlessExit",
    "memoryMultiplier",
    "memoryLimit",
)
CLUSTER_KEYS = (
    "pipetasks",
    "dimensions",
    "equalDimensions",
    "partitionDimensions",
    "partitionMaxClusters",
    "partitionMaxSize",
)

STATE_MAP = {
    "succeeded": WmsStates.SUCCEEDED,
    "noWork": WmsStates.SUCCEEDED,  # NoWorkFound: a success, as pipetask counts it
    "failed": WmsStates.FAILED,
    "blocked": WmsStates.PRUNED,  # bps: "at least one of the parents failed or can't be run"
    "running": WmsStates.RUNNING,
    "pending": WmsStates.PENDING,
    "cancelled": WmsStates.DELETED,
}


class QuantaError(RuntimeError):
    """A ``quanta`` command failed; the message carries its stderr."""

    def __init__(self, args, returncode, stdout, stderr):
        self.command = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr or "").strip() or (stdout or "").strip() or "(no output)"
        if returncode is None:  # never ran: no executable, bad id, missing setting
            super().__init__(f"quanta: {detail}")
        else:
            super().__init__(f"'{' '.join(self.command)}' failed (exit {returncode}):\n{detail}")


def quanta_bin():
    """The quanta executable: $QUANTA_BIN, else `quanta` on PATH."""
    path = os.environ.get("QUANTA_BIN")
    if path:
        if not os.access(path, os.X_OK):
            raise QuantaError(["quanta"], None, "", f"QUANTA_BIN={path} is not an executable file")
        return path
    found = shutil.which("quanta")
    if not found:
        raise QuantaError(
            ["quanta"], None, "", "no 'quanta' on PATH; install Quanta or set QUANTA_BIN to its executable"
        )
    return found


def run_quanta(*args):
    """Runs `quanta ARGS`; returns its stdout, raises QuantaError (with stderr) on failure."""
    cmd = [quanta_bin(), *map(str, args)]
    _LOG.debug("running %s", cmd)
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as err:
        raise QuantaError(cmd, None, "", str(err)) from err
    if proc.returncode != 0:
        raise QuantaError(cmd, proc.returncode, proc.stdout, proc.stderr)
    for line in proc.stderr.splitlines():
        if line.strip():
            _LOG.info("quanta: %s", line)
    return proc.stdout


def resolve_dirs(run_id):
    """(bps submit dir or None, Quanta submit dir) for an id: either directory works."""
    path = os.path.abspath(os.path.expanduser(str(run_id)))
    if os.path.isfile(os.path.join(path, QUANTA_SUBDIR, "plan.json")):
        return path, os.path.join(path, QUANTA_SUBDIR)
    if os.path.isfile(os.path.join(path, "plan.json")):
        parent = os.path.dirname(path)
        return (parent if os.path.isfile(os.path.join(parent, NOTE_FILE)) else None), path
    raise QuantaError(
        ["quanta"], None, "", f"{run_id}: not a Quanta submission (no plan.json in it or in {QUANTA_SUBDIR}/)"
    )


def read_note(bps_dir):
    if not bps_dir:
        return {}
    try:
        with open(os.path.join(bps_dir, NOTE_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _value(config, key, curvals=None):
    """A bps config value, resolved the way bps resolves it; None when unset."""
    opt = {"default": None}
    if curvals:
        opt["curvals"] = dict(curvals)
    found, value = config.search(key, opt=opt)
    return value if found and value not in (None, "") else None


def _plain(value):
    """YAML-friendly scalars and lists (bps writes lists as "a, b" strings; Quanta reads both)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return str(value)


def _raw_section(config, *path):
    """A section exactly as written (no bps search), or None: e.g. ("pipetask", "isr")."""
    from lsst.daf.butler import Config

    node = config
    for part in path:
        if not isinstance(node, Config) or not Config.__contains__(node, part):
            return None
        node = Config.__getitem__(node, part)
    return node if isinstance(node, Config) else None


def submit_config(config):
    """The resource and clustering keys of a resolved bps config, for `quanta plan --config`.

    bps has already merged includeConfigs, its defaults and the command line, expanded ${ENV}
    and its {placeholders}; only the keys Quanta uses are written, with the values bps would use
    (searched the way bps searches them: command line, cluster/pipetask/site sections, root).
    """
    site = _value(config, "computeSite")
    base = {"curr_site": site} if site else {}
    out = {}
    for key in RESOURCE_KEYS:
        value = _value(config, key, base)
        if value is not None:
            out[key] = _plain(value)
    pipetask = {}
    for label in list((_raw_section(config, "pipetask") or {}).keys()):
        if label in ("pipetaskInit", "finalJob"):
            continue
        written = set((_raw_section(config, "pipetask", label) or {}).keys())
        settings = {
            key: _plain(_value(config, key, {**base, "curr_pipetask": label}))
            for key in RESOURCE_KEYS
            if key in written
        }
        if settings:
            pipetask[label] = settings
    if pipetask:
        out["pipetask"] = pipetask
    # bps applies cluster.* only with dimension clustering; its default puts each quantum alone.
    algorithm = _value(config, "clusterAlgorithm") or ""
    if str(algorithm).endswith("dimension_clustering"):
        clusters = {}
        for name in list((_raw_section(config, "cluster") or {}).keys()):
            written = set((_raw_section(config, "cluster", name) or {}).keys())
            spec = {
                key: _plain(_value(config, key, {**base, "curr_cluster": name}))
                for key in CLUSTER_KEYS + RESOURCE_KEYS
                if key in written
            }
            if spec.get("pipetasks"):
                clusters[name] = spec
        if clusters:
            out["cluster"] = clusters
    final = _final_job(config)
    if final:
        out["finalJob"] = final
    merge = _value(config, "lsstMerge")
    if merge:
        out["lsstMerge"] = str(merge)
    return out


# The final job's keys Quanta reads (SubmitConfig's finalJob); bps's own finalJob keys (commands,
# whenRun, concurrencyLimit) belong to its merge command, which Quanta does its own way.
FINAL_JOB_KEYS = ("requestMemory", "requestCpus", "requestWalltime", "queue")


def _final_job(config):
    """The finalJob keys the person wrote. bps merges its defaults in, and those size the final
    job for its own aggregate-graph at a data facility (requestCpus 16, requestMemory 32768); taken
    as written they would ask a small cluster for a node the merge does not need. A value equal to
    bps's default is the default, whoever wrote it, and Quanta's own final-job default applies."""
    from lsst.ctrl.bps import BPS_DEFAULTS

    section = _raw_section(config, "finalJob")
    if section is None:
        return {}
    defaults = BPS_DEFAULTS.get("finalJob") or {}
    out = {}
    for key in FINAL_JOB_KEYS:
        if key in set(section.keys()):
            value = _plain(section[key])
            if key not in defaults or _plain(defaults[key]) != value:
                out[key] = value
    return out


def _write_yaml(data, path):
    import yaml

    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("# Written by quanta_lsst.bps from the bps config: the keys `quanta plan` uses.\n")
        yaml.safe_dump(data, f, sort_keys=False, default_flow_style=False)
    os.replace(tmp, path)


def overall_state(status):
    """The run's WmsStates from `quanta status --json`."""
    quanta = status.get("quanta") or {}
    total = sum(quanta.values())
    merge = status.get("merge") or ""
    if "active" in status:  # quanta >= this version says whether anything (the final job too) will still run
        active = bool(status["active"])
    else:
        final_active = re.search(r"\(final job \S+ (pending|running)", merge) is not None
        active = quanta.get("running", 0) + quanta.get("pending", 0) > 0 or final_active
    if active:
        started = total - quanta.get("pending", 0)
        return WmsStates.RUNNING if started > 0 or quanta.get("running", 0) else WmsStates.PENDING
    if quanta.get("cancelled", 0) or "cancelled" in (status.get("scheduler") or ""):
        return WmsStates.DELETED
    if quanta.get("failed", 0) or quanta.get("blocked", 0):
        return WmsStates.FAILED
    if total and quanta.get("succeeded", 0) + quanta.get("noWork", 0) == total and "registered" in merge:
        return WmsStates.SUCCEEDED
    # Every quantum succeeded but the final job did not merge (or nothing was planned).
    return WmsStates.FAILED if total else WmsStates.UNKNOWN


def failure_lines(status, limit=5):
    """The first failures, one line each: where, class, reason."""
    lines = []
    bad = [e for e in status.get("elements") or [] if e.get("state") in ("failed", "blocked", "cancelled")]
    bad.sort(key=lambda e: ({"failed": 0, "cancelled": 1, "blocked": 2}[e["state"]], e.get("array", ""), e.get("index", 0)))
    for e in bad[:limit]:
        where = f"{e.get('array')}[{e.get('index')}]"
        if e.get("slurmJob"):
            where += f" (SLURM {e['slurmJob']})"
        what = e.get("failureClass") or e["state"]
        if e.get("exitCode") not in (None, 0):
            what += f", exit {e['exitCode']}"
        reason = (e.get("reason") or "").strip().splitlines()
        lines.append(f"{where}: {what}" + (f": {reason[0]}" if reason else ""))
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more jobs that did not succeed ('quanta status DIR --all')")
    return lines


def run_report(bps_dir, quanta_dir, status, note):
    """A WmsRunReport with per-label quanta counts."""
    order = [t["label"] for t in status.get("tasks") or []]
    summary = {}
    for task in status.get("tasks") or []:
        counts = dict.fromkeys(WmsStates, 0)
        for state, n in (task.get("counts") or {}).items():
            counts[STATE_MAP.get(state, WmsStates.MISFIT)] += n
        # An array holding one quantum per element of this label: split its waiting elements into
        # "queued" (PENDING) and "waiting for upstream jobs" (UNREADY).
        label = task["label"]
        own = re.compile(rf"{re.escape(label)}(-\d+)?")  # big arrays are split: isr-1, isr-2, ...
        elements = [e for e in status.get("elements") or [] if own.fullmatch(e.get("array") or "")]
        if elements and len(elements) == task.get("total"):
            waiting = sum(1 for e in elements if e.get("state") == "pending" and "Dependency" in (e.get("reason") or ""))
            waiting = min(waiting, counts[WmsStates.PENDING])
            counts[WmsStates.PENDING] -= waiting
            counts[WmsStates.UNREADY] += waiting
        summary[label] = counts
    totals = dict.fromkeys(WmsStates, 0)
    for counts in summary.values():
        for state, n in counts.items():
            totals[state] += n
    exit_codes = {}
    for e in status.get("elements") or []:
        label = re.sub(r"-\d+$", "", e.get("array") or "")
        label = e.get("array") if e.get("array") in summary else label
        if label in summary and e.get("state") == "failed" and e.get("exitCode") not in (None, 0):
            exit_codes.setdefault(label, []).append(int(e["exitCode"]))

    info = WmsSpecificInfo()
    info.add_message("Quanta submission: {quanta_dir}", quanta_dir=quanta_dir)
    info.add_message("Scheduler: {scheduler}", scheduler=status.get("scheduler") or "?")
    info.add_message("Merge: {merge}", merge=status.get("merge") or "?")
    if status.get("pendingReasons"):
        info.add_message("Waiting: {pending_reasons}", pending_reasons=status["pendingReasons"])
    if status.get("note"):
        info.add_message("Note: {quanta_note}", quanta_note=status["note"])
    info.add_message("Counts are quanta; details: quanta status {quanta_dir} [--all]", quanta_dir=quanta_dir)

    return WmsRunReport(
        wms_id=bps_dir or quanta_dir,
        global_wms_id=quanta_dir,
        path=bps_dir or quanta_dir,
        label=note.get("name") or os.path.basename(bps_dir or quanta_dir),
        run=status.get("outputRun") or note.get("outputRun"),
        # bps report formats every column as text: a key the config never set is "", not None.
        project=note.get("project") or "",
        campaign=note.get("campaign") or "",
        payload=note.get("payloadName") or "",
        operator=note.get("operator") or "",
        run_summary=";".join(f"{label}:{next(t['total'] for t in status['tasks'] if t['label'] == label)}" for label in order),
        state=overall_state(status),
        jobs=[],
        total_number_jobs=sum(t.get("total", 0) for t in status.get("tasks") or []),
        job_state_counts=totals,
        job_summary=summary,
        exit_code_summary=exit_codes,
        specific_info=info,
    )


class QuantaWorkflow(BaseWmsWorkflow):
    """A workflow planned by `quanta plan`: remembers bps's and Quanta's submit directories."""

    def __init__(self, name, config, bps_dir=None, quanta_dir=None):
        super().__init__(name, config)
        self.bps_dir = bps_dir
        self.quanta_dir = quanta_dir
        self.submit_path = bps_dir

    @classmethod
    def from_generic_workflow(cls, config, generic_workflow, out_prefix, service_class):
        workflow = cls(generic_workflow.name, config, bps_dir=os.path.abspath(out_prefix),
                       quanta_dir=os.path.join(os.path.abspath(out_prefix), QUANTA_SUBDIR))
        workflow.service_class = service_class
        return workflow

    def write(self, out_prefix):
        """Writes the plugin's note (names bps reports with, where the Quanta submission is)."""
        def get(key):
            value = _value(self.config, key) if self.config is not None else None
            return None if value is None else str(value)

        note = {
            "name": self.name,
            "quantaDir": self.quanta_dir,
            "operator": get("operator"),
            "project": get("project"),
            "campaign": get("campaign"),
            "payloadName": get("payloadName"),
            "outputRun": get("outputRun"),
            "runId": self.run_id,
        }
        path = os.path.join(out_prefix, NOTE_FILE)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(note, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)


class QuantaService(BaseWmsService):
    """bps <-> Quanta: prepare = `quanta plan`, submit = `quanta submit`, report = `quanta status`."""

    def run_submission_checks(self):
        # Fail early, before bps builds the graph: no quanta, or a quantaSite file that is not there.
        quanta_bin()
        site = _value(self.config, "quantaSite") if self.config else None
        if site and ("/" in str(site) or str(site).endswith((".yaml", ".yml"))) and not os.path.isfile(str(site)):
            raise QuantaError(["quanta"], None, "", f"quantaSite {site}: no such file")

    def ping(self, pass_thru=None):
        try:
            run_quanta("--help")
        except QuantaError as err:
            return 1, str(err)
        return 0, f"quanta found: {quanta_bin()}"

    def prepare(self, config, generic_workflow, out_prefix=None):
        out_prefix = os.path.abspath(out_prefix or _value(config, "submitPath") or ".")
        graph = _value(config, "runQgraphFile") or _value(config, "qgraphFile")
        if not graph:
            try:
                graph = generic_workflow.get_file("runQgraphFile").src_uri
            except Exception:
                graph = None
        if not graph or not os.path.isfile(str(graph)):
            raise QuantaError(["quanta", "plan"], None, "", f"bps wrote no quantum graph (looked for {graph!r})")
        butler = _value(config, "butlerConfig")
        if not butler:
            raise QuantaError(["quanta", "plan"], None, "", "payload.butlerConfig is not set in the bps config")
        repo = str(butler)
        if repo.endswith((".yaml", ".json")) and os.path.isfile(repo):
            repo = os.path.dirname(os.path.abspath(repo))
        site = _value(config, "quantaSite") or _value(config, "computeSite")
        if not site:
            raise QuantaError(
                ["quanta", "plan"], None, "",
                "no site: set quantaSite (a Quanta site YAML) or computeSite (a Quanta site name) in the bps config",
            )

        os.makedirs(out_prefix, exist_ok=True)
        derived = os.path.join(out_prefix, "quanta_submit.yaml")
        _write_yaml(submit_config(config), derived)
        workflow = QuantaWorkflow.from_generic_workflow(
            config, generic_workflow, out_prefix, f"{type(self).__module__}.{type(self).__name__}"
        )
        # --claim-run: the output run is registered now, so a second submission given the same run
        # name is refused here instead of colliding in the merge.
        args = ["plan", str(graph), "--repo", repo, "--site", str(site), "--config", derived, "--out", workflow.quanta_dir,
                "--claim-run"]
        # The one-line switch: a bps config written for another plugin (Parsl's site.<computeSite>)
        # gets its site mapped exactly as `quanta submit bps.yaml` maps it, unless a Quanta site
        # config of that name (or quantaSite) exists, which `quanta plan` prefers.
        section = None if _value(config, "quantaSite") else _raw_section(config, "site", str(site))
        if section is not None:
            bps_site = os.path.join(out_prefix, "quanta_bps_site.yaml")
            values = {}
            for key in list(section.keys()):
                value = _value(config, key, {"curr_site": str(site)})
                if value is not None and not isinstance(value, dict):
                    values[key] = _plain(value)
            _write_yaml({"computeSite": str(site), "site": {str(site): values}}, bps_site)
            args += ["--bps-site", bps_site]
        summary = run_quanta(*args)
        for line in summary.splitlines():
            _LOG.info("quanta plan: %s", line)
        workflow.write(out_prefix)
        return workflow

    def submit(self, workflow, **kwargs):
        out = run_quanta("submit", workflow.quanta_dir)
        for line in out.splitlines():
            _LOG.info("quanta submit: %s", line)
        workflow.run_id = workflow.bps_dir or workflow.quanta_dir
        workflow.write(workflow.bps_dir or os.path.dirname(workflow.quanta_dir))
        return workflow

    def status_json(self, run_id):
        bps_dir, quanta_dir = resolve_dirs(run_id)
        return bps_dir, quanta_dir, json.loads(run_quanta("status", quanta_dir, "--json", "--exit-zero"))

    def report(self, wms_workflow_id=None, user=None, hist=0, pass_thru=None, is_global=False,
               return_exit_codes=False):
        if not wms_workflow_id:
            return [], "Quanta reports one submission at a time: pass --id with the submit directory bps printed."
        try:
            bps_dir, quanta_dir, status = self.status_json(wms_workflow_id)
        except QuantaError as err:
            return [], str(err)
        report = run_report(bps_dir, quanta_dir, status, read_note(bps_dir))
        failures = failure_lines(status)
        message = "\n".join(["Jobs that did not succeed:"] + ["  " + f for f in failures]) if failures else ""
        return [report], message

    def get_status(self, wms_workflow_id, hist=1, is_global=False):
        try:
            _, _, status = self.status_json(wms_workflow_id)
        except QuantaError as err:
            return WmsStates.UNKNOWN, str(err)
        failures = failure_lines(status, limit=1)
        return overall_state(status), failures[0] if failures else ""

    def list_submitted_jobs(self, wms_id=None, user=None, require_bps=True, pass_thru=None, is_global=False):
        if not wms_id:
            return []
        try:
            bps_dir, quanta_dir = resolve_dirs(wms_id)
        except QuantaError:
            return []
        return [bps_dir or quanta_dir]

    def cancel(self, wms_id, pass_thru=None):
        try:
            _, quanta_dir = resolve_dirs(wms_id)
            out = run_quanta("cancel", quanta_dir)
        except QuantaError as err:
            return False, str(err)
        return True, out.strip()

    def restart(self, wms_workflow_id):
        try:
            bps_dir, quanta_dir = resolve_dirs(wms_workflow_id)
            out = run_quanta("restart", quanta_dir)
        except QuantaError as err:
            return None, None, str(err)
        for line in out.splitlines():
            _LOG.info("quanta restart: %s", line)
        note = read_note(bps_dir)
        return bps_dir or quanta_dir, note.get("name") or os.path.basename(bps_dir or quanta_dir), ""
