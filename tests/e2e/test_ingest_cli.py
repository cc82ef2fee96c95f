"""Landing from the command line and over HTTP: source blocks, history, migrate, mock, run-local."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import yaml

from .test_api import server  # noqa: F401 - the running-service fixture
from .test_cli import twh

sys.path.insert(0, str(Path(__file__).parents[1] / "landing"))
from ingest_helpers import manifest, write_csv  # noqa: E402


def test_cli_source_block_history_mock_and_run_local(tmp_path):
    home = tmp_path / "wh"
    twh(home, "init")
    twh(home, "user", "add", "bank_steward", "--role", "steward", "--tenant", "bank_a", user="admin")
    twh(home, "user", "add", "analyst", "--role", "enterprise", "--tenant", "bank_a", user="admin")
    src = write_csv(tmp_path / "p.csv", [(f"{i:03d}", f"2024-01-{1 + i % 3:02d}", i) for i in range(30)])
    m = tmp_path / "prices.yaml"  # no expectations: each CLI process would import Great Expectations (slow)
    m.write_text(yaml.safe_dump(manifest(source={"kind": "csv", "path": str(src)}, expectations=[])))
    twh(home, "dataset", "register", str(m), user="bank_steward")
    assert twh(home, "ingest", "prices", user="bank_steward")["rows"] == 30
    h = twh(home, "dataset", "history", "prices", user="analyst")
    assert [v["version"] for v in h["versions"]] == [0, 1] and h["versions"][1]["rows_out"] == 30
    out = tmp_path / "mock" / "prices.parquet"
    out.parent.mkdir()
    twh(home, "dataset", "mock", "prices", "--rows", "300", "--out", str(out), user="analyst")
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.yaml").write_text("name: local\npurpose: credit_risk\ndatasets: [prices]\n")
    (job / "job.py").write_text(textwrap.dedent("""
        import twh_job
        r = twh_job.query("SELECT day, COUNT(*) AS n, AVG(price) AS p FROM prices GROUP BY day")
        r.to_csv("by_day.csv")
        try:
            twh_job.query("SELECT * FROM prices")
        except twh_job.BrokerError as e:
            print("refused:", e.code)
    """))
    r = twh(home, "job", "run-local", str(job), "--mock-dir", str(out.parent), user="analyst")
    assert r["returncode"] == 0, r["stderr"]
    assert r["outputs"] == ["by_day.csv"] and "refused: query_refused" in r["stdout"]
    assert [q["outcome"] for q in r["queries"]] == ["released", "refused"]
    assert (out.parent / "out" / "by_day.csv").read_text().startswith("day,n,p")


def test_api_history_migrate_mock_and_source_rerun(server, wh, people, tmp_path):  # noqa: F811
    from sandbox.errors import Conflict, Forbidden
    from sandbox.interfaces.client import Client

    url, tokens = server
    steward, analyst = Client(url, tokens["bank_steward"]), Client(url, tokens["analyst"])
    src = write_csv(tmp_path / "p.csv", [("001", "2024-01-01", 1.0)])
    m = tmp_path / "m.yaml"
    m.write_text(yaml.safe_dump(manifest(source={"kind": "csv", "path": str(src)})))
    steward.register_dataset(m)
    assert steward.ingest("prices")["rows"] == 1  # no file: the service re-runs the source block
    hist = analyst.dataset_history("prices")
    assert hist["versions"][-1]["source"]["path"] == str(src)
    assert analyst.mock_dataset("prices", rows=7).decode().count("\n") == 8
    drift = write_csv(tmp_path / "d.csv", [("002", "2024-01-02", 2.0, "x")], header="code,day,price,venue")
    try:
        steward.ingest("prices", drift)
        raise AssertionError("drift was accepted")
    except Conflict as exc:
        assert exc.details["drift"]["added"] == ["venue"]
    new = tmp_path / "v2.yaml"
    new.write_text(yaml.safe_dump(manifest(schema=[*manifest()["schema"], {"name": "venue", "type": "string",
                                                                             "role": "dimension"}])))
    try:
        analyst.migrate_dataset("prices", new)
        raise AssertionError("an enterprise migrated a schema")
    except Forbidden:
        pass
    assert steward.migrate_dataset("prices", new)["diff"]["added"] == ["venue"]
    assert steward.ingest("prices", drift)["status"] == "committed"
    assert json.dumps(analyst.dataset_history("prices")).count('"migrate"') >= 1
