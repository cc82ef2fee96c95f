"""Faults while landing: kill -9 at random points, and two writers into one table."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

sys.path.insert(0, str(Path(__file__).parents[1] / "landing"))
from ingest_helpers import register  # noqa: E402

from sandbox.errors import Conflict  # noqa: E402
from sandbox.settings import Settings  # noqa: E402
from sandbox.warehouse import Warehouse  # noqa: E402

TWH = str(Path(sys.executable).with_name("twh"))


def _big_csv(path: Path, rows: int, start: int = 0) -> Path:
    with open(path, "w") as f:
        f.write("code,day,price\n")
        for i in range(start, start + rows):
            f.write(f"{i:018d},2024-01-{1 + i % 28:02d},{i % 997}.25\n")
    return path


def _delta_rows(path: str) -> int:
    return DeltaTable(path).to_pyarrow_dataset().count_rows()


@pytest.mark.slow
def test_kill_9_at_random_points_leaves_the_previous_version_and_a_retry_completes(wh, people, tmp_path):
    """Each run lands a different file; it is killed at a random point of a full run's duration
    (start-up, reading, writing Parquet parts, committing, recording): the table is always at a
    complete version, and the retry of a killed load completes exactly once."""
    name = register(wh, people, expectations=[])
    path = str(Path(wh.settings.home) / "tables" / "market" / name)
    n = 40_000
    env = {**os.environ, "TWH_HOME": str(wh.settings.home), "TWH_USER": "bank_steward",
           "TWH_DATABASE_URL": wh.settings.database_url}  # the same catalog on the PostgreSQL pass

    def run(src: Path) -> subprocess.Popen:
        return subprocess.Popen([TWH, "--json", "ingest", name, str(src)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    t0 = time.monotonic()
    assert run(_big_csv(tmp_path / "f0.csv", n)).wait(120) == 0
    full = time.monotonic() - t0  # one whole run, start-up included
    rng = random.Random(7)
    expected, killed = n, []
    deadline = time.monotonic() + 18
    runs = 0
    while runs < 5 and time.monotonic() < deadline:
        runs += 1
        src = _big_csv(tmp_path / f"f{runs}.csv", n, start=runs * n)
        proc = run(src)
        time.sleep(rng.uniform(0.3, 1.0) * full)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed.append(src)
        proc.wait()
        rows = _delta_rows(path)
        assert rows in (expected, expected + n), "a partial load is visible"  # all or nothing
        expected = rows
    assert killed, "no run was killed"
    # the retry of the last killed load completes (or finds it committed and records it), exactly once
    before = _delta_rows(path)
    done = subprocess.run([TWH, "--json", "ingest", name, str(killed[-1])], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)["status"]
    landed = _delta_rows(path)
    assert landed == (before + n if status == "committed" else before), status  # never twice
    shown = wh.datasets.show(people["admin"], name)
    assert sum(v["rows"] for v in shown["versions"]) == landed  # the catalog knows every committed load
    print(f"kill -9: {runs} runs, {len(killed)} killed (full run {full:.1f}s)")


def test_two_concurrent_ingests_both_land_or_one_conflicts(settings, wh, people, tmp_path):
    name = register(wh, people, expectations=[])
    files = [_big_csv(tmp_path / f"f{i}.csv", 20_000, start=i * 20_000) for i in range(2)]
    results: list = [None, None]

    def go(i: int) -> None:
        other = Warehouse.open(settings)  # same catalog (SQLite in home, or PostgreSQL on the PG pass)
        try:
            results[i] = other.ingest.ingest(other.users.principal("bank_steward"), name, files[i])
        except Conflict as exc:
            results[i] = exc
        finally:
            other.close()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    landed = [r for r in results if isinstance(r, dict) and r["status"] == "committed"]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(landed) + len(conflicts) == 2 and landed, results
    for c in conflicts:
        assert "conflicted with a concurrent commit" in c.message
    path = str(Path(settings.home) / "tables" / "market" / name)
    assert _delta_rows(path) == 20_000 * len(landed)  # never silent loss
    show = wh.datasets.show(people["admin"], name)
    assert show["current_version"] == max(r["version"] for r in landed)


def test_a_load_killed_after_its_commit_and_never_retried_is_recorded_by_the_next_ingest(wh, people, tmp_path,
                                                                                        monkeypatch):
    """The crash window between the Delta commit and the catalog write: if that load is never
    retried, the next ingest into the table records it (lineage marked recovered) before landing
    its own — the catalog never publishes rows it has no lineage for."""
    name = register(wh, people, expectations=[])
    steward = people["bank_steward"]
    real = type(wh.ingest).record
    calls = {"n": 0}

    def crash_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt("killed between the Delta commit and the catalog")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(wh.ingest), "record", crash_once)
    with pytest.raises(KeyboardInterrupt):
        wh.ingest.ingest(steward, name, _big_csv(tmp_path / "a.csv", 100))
    monkeypatch.setattr(type(wh.ingest), "record", real)
    assert wh.datasets.show(people["admin"], name)["versions"] == []  # the catalog missed it
    out = wh.ingest.ingest(steward, name, _big_csv(tmp_path / "b.csv", 50, start=100))
    assert out["status"] == "committed"
    versions = wh.datasets.show(people["admin"], name)["versions"]
    assert [v["rows"] for v in versions] == [100, 50]
    path = str(Path(wh.settings.home) / "tables" / "market" / name)
    assert sum(v["rows"] for v in versions) == _delta_rows(path) == 150
    # the retry of the killed load now finds it recorded: nothing lands twice
    again = wh.ingest.ingest(steward, name, tmp_path / "a.csv")
    assert again["status"] == "already_loaded" and _delta_rows(path) == 150
