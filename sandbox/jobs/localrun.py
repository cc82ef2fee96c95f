"""Local development: run a job's ``job.py`` on your own machine against mock tables.

``twh job run-local JOB_DIR --mock-dir DIR`` runs the job OUTSIDE the warehouse (no sandbox:
it is your code on your machine, reading only mock data) with the same ``twh_job`` client
library, unchanged, talking the same wire protocol to a local broker that applies the same
gate (:func:`sandbox.gate.plan_query` / :func:`sandbox.gate.run_query` over DuckDB) to mock
tables. A job that runs here runs unchanged in the sandbox; a query the gate would refuse
there is refused here, with the same reason.

Mock tables are ``DIR/<dataset>.parquet``; a missing one is generated from the dataset's
manifest (:mod:`sandbox.datasets.mock`) and written there, so you can inspect (and replace) it.
Outputs go to ``DIR/out/`` (or ``--out``). Nothing is audited: no warehouse data is touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..datasets.manifest import DatasetManifest
from ..datasets.mock import mock_table
from ..errors import TwhError
from ..gate import TableInfo, plan_query, run_query
from ..isolation.channel import Broker
from ..isolation.runner import JOBCLIENT_DIR
from ..tables.record_keys import RECORD_KEY, fresh_keys
from ..tables.snapshot import Snapshot
from .spec import load_job_files


def mock_snapshots(manifests: Mapping[str, DatasetManifest], mock_dir: Path, *, rows: int = 1000,
                   seed: int = 0) -> dict[str, Snapshot]:
    """One Parquet file per dataset in ``mock_dir`` (generated when missing), as snapshots."""
    mock_dir.mkdir(parents=True, exist_ok=True)
    snaps = {}
    for i, (name, manifest) in enumerate(sorted(manifests.items())):
        path = (mock_dir / f"{name}.parquet").absolute()
        if not path.exists():
            pq.write_table(mock_table(manifest, rows, seed + i), path)
        if RECORD_KEY not in pq.read_schema(path).names:
            # mock rows get record keys too (the gate perturbs them as it would real ones); a file the
            # developer made or downloaded is left as it is, and read through a keyed copy
            table = pq.read_table(path)
            path = (mock_dir / ".keyed" / f"{name}.parquet").absolute()
            path.parent.mkdir(exist_ok=True)
            pq.write_table(table.append_column(pa.field(RECORD_KEY, pa.int32(), nullable=False),
                                               fresh_keys(table.num_rows)), path)
        snaps[name] = Snapshot(dataset=name, table_path=str(mock_dir.absolute()), version=0, files=(str(path),),
                               columns=tuple(pq.read_schema(path).names))
    return snaps


def local_handler(manifests: Mapping[str, DatasetManifest], snapshots: Mapping[str, Snapshot],
                  log: list[dict[str, Any]]) -> Any:
    """The broker's request handler over mock snapshots: the same plan → run → gate path."""

    def lookup(name: str) -> TableInfo:
        if name not in manifests:
            from ..errors import NotFound

            raise NotFound(f"dataset {name!r} is not among this job's datasets", details={"dataset": name})
        m = manifests[name]
        return TableInfo(name=name, policy=m.build_policy(), columns=tuple(c.name for c in m.columns))

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            if op == "query":
                sql = request.get("sql")
                plan = plan_query(sql if isinstance(sql, str) else "", lookup)
                result = run_query(plan, {t: snapshots[t] for t in plan.tables})
                log.append({"sql": sql, "outcome": "released", "suppressed": result.suppressed_groups})
                return {"ok": True, **result.to_dict(), "suppressed": result.suppressed_groups,
                        "notes": _notes(result)}
            if op == "datasets":
                return {"ok": True, "datasets": [
                    {"name": n, "version": 0, "title": m.title,
                     "columns": [{"name": c.name, "type": c.type, "role": c.role.value} for c in m.columns]}
                    for n, m in manifests.items()]}
            return {"ok": False, "error": {"code": "invalid_input", "message": f"unknown op {str(op)[:40]!r}"}}
        except TwhError as exc:
            log.append({"sql": request.get("sql"), "outcome": "refused", "reason": exc.message})
            return {"ok": False, "error": {"code": exc.code, "message": exc.message, "rule": exc.details.get("rule")}}

    return handle


def run_local(job_dir: Path, manifests: Mapping[str, DatasetManifest], mock_dir: Path, *, out_dir: Path | None = None,
              rows: int = 1000, seed: int = 0, timeout: float = 300) -> dict[str, Any]:
    spec, _files = load_job_files(job_dir)
    missing = [d for d in spec.datasets if d not in manifests]
    if missing:
        from ..errors import NotFound

        raise NotFound(f"no manifest for dataset(s) {missing}")
    wanted = {d: manifests[d] for d in spec.datasets}
    snapshots = mock_snapshots(wanted, mock_dir, rows=rows, seed=seed)
    out = (out_dir or mock_dir / "out").absolute()
    out.mkdir(parents=True, exist_ok=True)
    log: list[dict[str, Any]] = []
    parent, child = socket.socketpair()
    broker = Broker(parent, local_handler(wanted, snapshots, log))
    broker.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWH_")}
    env.update({"TWH_BROKER_FD": str(child.fileno()), "TWH_OUT_DIR": str(out), "TWH_MOCK_DIR": str(mock_dir),
                "PYTHONPATH": os.pathsep.join([str(JOBCLIENT_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    try:
        proc = subprocess.run([sys.executable, spec.entrypoint], cwd=job_dir, env=env, pass_fds=(child.fileno(),),
                              capture_output=True, timeout=timeout, check=False)
    finally:
        child.close()
        broker.join(timeout=10)
    return {"job": spec.name, "returncode": proc.returncode, "stdout": proc.stdout.decode("utf-8", "replace"),
            "stderr": proc.stderr.decode("utf-8", "replace"), "queries": log,
            "outputs": sorted(p.name for p in out.iterdir() if p.is_file()), "out_dir": str(out),
            "mock_tables": {n: s.files[0] for n, s in snapshots.items()}}


def _notes(result: Any) -> list[str]:
    """What the gate did to the mock rows (suppressed cells by rule): shown on mock data only; a job
    on real data is told nothing about suppressed cells (``GatedResult.for_job``)."""
    notes = []
    for d in result.decisions:
        if d.get("suppressed") and d.get("rule") != "sdc":  # "sdc" is the total of the rules below it
            setting = f" (threshold {d['threshold']})" if "threshold" in d else ""
            notes.append(f"{d['suppressed']} group(s) suppressed by rule {d.get('rule')}{setting}")
    return notes
