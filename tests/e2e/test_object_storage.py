"""A warehouse whose tables live on object storage (s3:// via s3proxy): land, migrate, query, export —
credentials only in Settings, concurrent loads into one table serialised by the commit lock."""

from __future__ import annotations

import io
import logging
import threading
from typing import Any

import pytest
from sqlalchemy import select

from sandbox.catalog.db import Dataset, DatasetVersion
from sandbox.datasets.manifest import parse_manifest
from sandbox.tables import storage

from .conftest import FIRMS, LOANS, write_data
from .test_flow import RATE_JOB

#: a job that goes looking for the object store's credentials wherever a sandbox could see them
SNOOP_JOB = """
    import os, twh_job
    seen = []
    for k, v in sorted(os.environ.items()):
        seen.append(f"{k}={v}")
    for path in ("/proc/self/environ", "/proc/1/environ", "/proc/1/cmdline"):
        try:
            seen.append(open(path, "rb").read().decode("utf-8", "replace"))
        except OSError as exc:
            seen.append(f"{path}: {type(exc).__name__}")
    for root, dirs, files in os.walk("/", onerror=lambda e: None):
        if root.startswith(("/proc", "/sys", "/usr", "/dev", "/opt")):
            dirs[:] = []
            continue
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as fh:
                    seen.append(fh.read(4096).decode("utf-8", "replace"))
            except OSError:
                pass
    print("\\n".join(seen))
    r = twh_job.query("SELECT industry, COUNT(*) AS n FROM firms GROUP BY industry")
    r.to_csv("snoop.csv")
"""


@pytest.fixture
def s3_settings(settings, s3_server):
    return settings.model_copy(update=_fields(s3_server))


def _fields(s3_server) -> dict[str, Any]:
    from pydantic import SecretStr

    raw = s3_server.settings(s3_server.bucket())
    return {**raw, "s3_access_key_id": SecretStr(raw["s3_access_key_id"]),
            "s3_secret_access_key": SecretStr(raw["s3_secret_access_key"])}


def _open(settings):
    from sandbox.warehouse import Warehouse

    return Warehouse.open(settings)


def _people(wh) -> dict[str, Any]:
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    for name, role, tenant in [("tax_steward", "steward", "tax_bureau"), ("bank_steward", "steward", "bank_a"),
                               ("analyst", "enterprise", "bank_a"), ("auditor", "auditor", "regulator")]:
        wh.users.add(admin, name, role, tenant)
    return {n: wh.users.principal(n) for n in ("admin", "tax_steward", "bank_steward", "analyst", "auditor")}


@pytest.fixture
def s3_landed(s3_settings, tmp_path):
    wh = _open(s3_settings)
    people = _people(wh)
    firms, loans = write_data(tmp_path)
    wh.datasets.register(people["tax_steward"], parse_manifest(FIRMS))
    wh.datasets.register(people["bank_steward"], parse_manifest(LOANS))
    wh.ingest.ingest(people["tax_steward"], "firms", firms)
    wh.ingest.ingest(people["bank_steward"], "loans", loans)
    yield wh, people
    wh.close()


def test_a_warehouse_on_object_storage_lands_migrates_and_answers(s3_landed, s3_server, job_dir) -> None:
    wh, people = s3_landed
    bucket = wh.settings.storage_uri.split("/")[2]
    with wh.db.read() as s:
        locations = dict(s.execute(select(Dataset.name, Dataset.table_path)).all())
    assert locations == {"firms": f"s3://{bucket}/wh/tables/government/firms",
                         "loans": f"s3://{bucket}/wh/tables/market/loans"}
    objects = s3_server.objects(bucket)
    assert any(o.startswith("wh/tables/market/loans/_delta_log/") for o in objects)
    assert not any(wh.settings.tables_dir.rglob("*")), "a table landed on the local disk"

    job = wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))
    done = wh.jobs.run(job["id"])
    assert done["state"] == "awaiting_approval", done["reason"]
    view = wh.jobs.get(people["tax_steward"], job["id"])
    (q,) = view["queries"]
    assert q["outcome"] == "released" and q["versions"] == {"firms": 1, "loans": 1}
    assert q["details"]["suppressed_groups"] == 2  # the same answer as on local disk (tests/e2e/test_flow.py)

    # a schema migration rewrites the table on the store; lineage and history read it back
    new = dict(FIRMS, schema=FIRMS["schema"] + [{"name": "note", "type": "string", "role": "dimension"}])
    out = wh.migrate_dataset(people["tax_steward"], "firms", parse_manifest(new))
    assert out["version"] == 2 and out["rows"] == 120
    history = wh.dataset_history(people["auditor"], "firms")
    assert [v["version"] for v in history["versions"]][-1] == 2
    assert storage.latest_version(wh.ctx.table(locations["firms"])) == 2
    assert wh.audit_verify(people["auditor"]).ok


def test_the_credentials_never_reach_a_sandbox_a_log_an_error_or_the_audit(s3_landed, s3_server, job_dir,
                                                                          caplog, capfd, monkeypatch) -> None:
    wh, people = s3_landed
    secret = s3_server.secret_key
    # as in a `twh worker` configured from its environment: the sandbox must not inherit it
    monkeypatch.setenv("TWH_S3_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    caplog.set_level(logging.DEBUG)
    job = wh.jobs.submit(people["analyst"], job_dir(SNOOP_JOB))
    done = wh.jobs.run(job["id"])
    logs = wh.jobs.logs(people["tax_steward"], job["id"])
    assert done["state"] == "awaiting_approval", (done["reason"], logs["stderr"][-2000:])
    assert "PATH=" in logs["stdout"] and "snoop" not in logs["stderr"]  # the job ran and looked
    export_id = wh.jobs.get(people["tax_steward"], job["id"])["export"]["id"]
    files = wh.exports.get(people["tax_steward"], export_id)["files"]
    assert files and all(secret not in str(f) for f in files)
    # an error from the store (a table the store cannot find) names no credential
    with wh.db.transaction() as s:
        ds = s.execute(select(Dataset).where(Dataset.name == "loans")).scalar_one()
        broken = ds.table_path + "-gone"
    with pytest.raises(Exception) as e:
        storage.pin_snapshot(wh.ctx.table(broken), "loans")
    audit = io.StringIO()
    wh.audit_export(people["auditor"], audit)
    with wh.db.read() as s:
        lineage = [str(v) for v in s.execute(select(DatasetVersion.lineage)).scalars()]
        paths = [str(v) for v in s.execute(select(Dataset.table_path)).scalars()]
    captured = capfd.readouterr()
    for where, text in {"job stdout": logs["stdout"], "job stderr": logs["stderr"], "error": str(e.value),
                        "audit": audit.getvalue(), "lineage": "".join(lineage), "catalog": "".join(paths),
                        "log records": "\n".join(r.getMessage() for r in caplog.records),
                        "stdout/stderr": captured.out + captured.err}.items():
        assert secret not in text, where


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=[pytest.mark.cluster_subset,
                                                                       pytest.mark.sqlite_pass])])
def test_concurrent_loads_into_one_s3_table_both_land_exactly_once(engine, s3_settings, tmp_path, request) -> None:
    """Two ingests into one s3:// table at the same moment: without the commit lock s3proxy lets one
    overwrite the other's commit (tests/tables/test_object_storage.py); with it both land, once each."""
    settings = s3_settings
    if engine == "spark":
        from spark_cluster import SPARK_TEST_MASTER

        request.getfixturevalue("spark")
        settings = settings.model_copy(update={"engine": "spark", "spark_master": SPARK_TEST_MASTER})
    wh = _open(settings)
    try:
        people = _people(wh)
        wh.datasets.register(people["tax_steward"], parse_manifest(FIRMS))
        files = []
        for i in range(2):
            path = tmp_path / f"firms{i}.csv"
            rows = [f"F{i}{j:016d},C,5001{i}{j % 2},{10 + j}" for j in range(20 + i)]
            path.write_text("uscc,industry,district,capital\n" + "\n".join(rows) + "\n")
            files.append(path)
        barrier = threading.Barrier(2)
        results: list[Any] = [None, None]

        def load(i: int) -> None:
            barrier.wait()
            try:
                results[i] = wh.ingest.ingest(people["tax_steward"], "firms", files[i])
            except BaseException as exc:  # noqa: BLE001
                results[i] = exc

        threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(r, dict) and r["status"] == "committed" for r in results), results
        assert sorted(r["version"] for r in results) == [1, 2]
        assert all(r.get("engine", "duckdb") == engine for r in results)
        with wh.db.read() as s:
            ds = s.execute(select(Dataset).where(Dataset.name == "firms")).scalar_one()
            recorded = sorted(s.execute(select(DatasetVersion.version, DatasetVersion.rows)
                                        .where(DatasetVersion.dataset_id == ds.id)).all())
            table = wh.ctx.table(ds.table_path)
        assert recorded == sorted((r["version"], r["rows"]) for r in results) and ds.current_version == 2
        loads = [c["metadata"].get("twh.load_id") for c in storage.history(table)]
        assert sorted(x for x in loads if x) == sorted(r["load_id"] for r in results)  # each exactly once
        assert sum(b.num_rows for b in storage.table_rows(table)) == 41
    finally:
        wh.close()

