"""engine=spark end to end: Queries.answer (policy → plan → run → gate → differencing → audit)
answers on Spark what it answers on DuckDB, through the Warehouse facade."""

from __future__ import annotations

import math
import os
import shutil
from typing import Any

import pytest
from pydantic import SecretStr
from spark_cluster import MASTER_ENV
from sqlalchemy import select

from sandbox.catalog.db import Dataset
from sandbox.errors import QueryRefused
from sandbox.tables import storage, uris
from sandbox.warehouse import Warehouse

# The first test also starts the SparkSession (JVM + Ivy): minutes on a loaded 2-core box.
pytestmark = pytest.mark.timeout(900)

QUERIES = [
    "SELECT industry, COUNT(*) AS n, AVG(capital) AS c FROM firms GROUP BY industry ORDER BY industry",
    "SELECT f.district, COUNT(*) AS n, SUM(l.amount) AS s, SUM(l.defaulted) AS d FROM firms f "
    "JOIN loans l ON f.uscc = l.uscc GROUP BY f.district",  # district 500199: 3 firms, suppressed
    "SELECT district, COUNT(*) AS n FROM firms WHERE capital > 5 GROUP BY district",  # measure in WHERE
    "SELECT district, COUNT(*) AS n FROM firms WHERE district = 500112 GROUP BY district",  # literal type
    "SELECT industry, COUNT(*) AS n FROM firms WHERE district LIKE '5001%' GROUP BY industry",
]


def _answers(wh: Warehouse, people: dict[str, Any], job_dir: Any) -> tuple[str, list[Any]]:
    job = wh.jobs.submit(people["analyst"], job_dir("print('queries are asked by the test')"))
    with wh.db.read() as s:  # the current versions, as a worker pins them when it claims the job
        tables = {n: s.execute(select(Dataset.table_path, Dataset.current_version).where(Dataset.name == n)).one()
                  for n in ("firms", "loans")}
    snapshots = {n: storage.pin_snapshot(uris.to_path(p), n, v) for n, (p, v) in tables.items()}
    out: list[Any] = []
    for sql in QUERIES:
        try:
            r = wh.queries.answer(people["analyst"], job["id"], "credit_risk", snapshots, sql).to_dict()
            rows = r["rows"] if "ORDER BY" in sql else sorted(r["rows"], key=repr)
            out.append(("released", r["columns"], rows, r["suppressed_groups"], r["decisions"]))
        except QueryRefused as exc:
            out.append(("refused", exc.details.get("rule")))
    return job["id"], out


def _close(a: Any, b: Any) -> bool:
    """Equal, floats within 1e-9 relative (sums of doubles in another order differ in the last bits)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("kind", ["classic", pytest.param("connect", marks=[pytest.mark.cluster_subset,
                                                                       pytest.mark.sqlite_pass])])
def test_spark_engine_answers_like_duckdb(landed: Warehouse, people: dict[str, Any], job_dir: Any, spark: Any,
                                          tmp_path: Any, kind: str, request: pytest.FixtureRequest) -> None:
    """On this process's SparkSession, and over Spark Connect (the server drives the 2-worker cluster;
    in the cluster child, tests/e2e/test_spark_cluster.py, a classic driver on the cluster)."""
    settings = landed.settings
    if settings.database_url:
        pytest.skip("copies the warehouse with its SQLite catalog")
    remote: dict[str, Any] = {}
    if kind == "connect" and not os.environ.get(MASTER_ENV):
        server = request.getfixturevalue("spark_connect")
        remote = {"spark_remote": server.url, "spark_connect_token": SecretStr(server.token)}
    # The same landed warehouse, twice: one copy answers on Spark, the other on DuckDB (each
    # copy has its own differencing ledger and answer cache, so both really run).
    home = tmp_path / "wh_spark"
    shutil.copytree(settings.home, home)
    on_spark = Warehouse.open(settings.model_copy(update={"home": home, "engine": "spark",
                                                          "spark_master": spark.sparkContext.master, **remote}))
    try:
        job_id, spark_answers = _answers(on_spark, people, job_dir)
        recorded = [q["outcome"] for q in on_spark.jobs.get(people["auditor"], job_id)["queries"]]
        assert on_spark.audit.verify().ok
    finally:
        on_spark.close()
        from sandbox.gate import spark_engine

        spark_engine.configure(spark.sparkContext.master)  # the rest of the run: this process's session
    _, duck_answers = _answers(landed, people, job_dir)

    assert _close(spark_answers, duck_answers), (spark_answers, duck_answers)
    assert [a[0] for a in spark_answers] == ["released", "released", "refused", "refused", "released"]
    assert spark_answers[1][3] >= 1  # the small district was suppressed on Spark too
    assert recorded == [a[0] for a in spark_answers]  # each answer audited with the job


def test_demo_takes_its_engine_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """`make demo ENGINE=spark` sets TWH_ENGINE; `twh demo` must hand it to the demo's warehouse."""
    from typer.testing import CliRunner

    import sandbox.demo.scenario as scenario
    from sandbox.interfaces.cli import main as cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(scenario, "run_demo", lambda home, **kw: seen.update(kw) or {})
    monkeypatch.setenv("TWH_ENGINE", "spark")
    monkeypatch.setenv("TWH_SPARK_MASTER", "local[1]")
    result = CliRunner().invoke(cli.app, ["demo", "--home", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert (seen["engine"].engine, seen["engine"].spark_master) == ("spark", "local[1]")
