"""An ingest into a dp dataset prepares the new version for its queries (heavy-unit table, bounded
copy) after the commit, so the first dp query reads what the later ones read; other datasets are
left alone, and a failure to prepare never fails the load."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import register, write_csv

from sandbox.broker.queries import BOUNDED_COPIES
from sandbox.gate import TableInfo, dp_bounding, plan_query, run_query
from sandbox.tables import storage

DP_POLICY = {"tenants": ["bank_a"], "purposes": ["credit_risk"], "release_mode": "dp", "privacy_unit": "code",
             "dp": {"budget": {"epsilon": 10}, "epsilon_per_query": 1, "max_rows_per_unit": 2,
                    "bounds": {"price": [0, 1000]},
                    "public_keys": {"day": ["2024-01-01", "2024-01-02", "2024-01-03"]}}}
SQL = "SELECT day, COUNT(*) AS n, SUM(price) AS s FROM prices GROUP BY day"


def _rows(n_codes: int, per_code: int) -> list[tuple]:
    return [(f"C{c:03d}", f"2024-01-{1 + d % 3:02d}", 10.0 + d) for c in range(n_codes) for d in range(per_code)]


def _snapshot(wh, name: str):  # noqa: ANN001, ANN202
    from sandbox.context import get_dataset

    with wh.db.read() as s:
        ds = get_dataset(s, name)
        return storage.pin_snapshot(ds.table_path, name, ds.current_version)


def test_a_dp_ingest_builds_the_copy_the_first_query_reads(wh, people, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(wh, people, policy=DP_POLICY)
    wh.ingest.ingest(people["bank_steward"], name, write_csv(tmp_path / "p.csv", _rows(20, 5)))  # every code heavy
    copies = wh.settings.home / BOUNDED_COPIES
    built = sorted(p.name for p in copies.rglob("*.parquet"))
    assert len(built) == 2 and any(b.endswith(".heavy.parquet") for b in built), built
    # a new process: nothing cached; the first query must not compute or write anything again
    dp_bounding._CACHE.clear()
    monkeypatch.setattr(dp_bounding, "_compute", lambda *a: pytest.fail("the heavy-unit table was recomputed"))
    before = {p: p.stat().st_mtime_ns for p in copies.rglob("*.parquet")}
    manifest = wh.datasets.manifest(name)
    info = TableInfo(name, manifest.build_policy(), tuple(c.name for c in manifest.columns))
    snap = _snapshot(wh, name)
    run = dp_bounding.choose(plan_query(SQL, lambda _n: info), {name: snap}, copies)
    assert run.copies and Path(run.copies[name]).exists()
    run_query(plan_query(SQL, lambda _n: info), {name: snap}, copies_dir=copies)
    assert sorted(before) == sorted(copies.rglob("*.parquet"))  # no new file: the first query read the prepared ones


def test_no_heavy_unit_no_copy_and_an_sdc_dataset_is_left_alone(wh, people, tmp_path: Path) -> None:
    dp_name = register(wh, people, policy=DP_POLICY)
    wh.ingest.ingest(people["bank_steward"], dp_name, write_csv(tmp_path / "a.csv", _rows(20, 2)))  # m = 2: light
    sdc_name = register(wh, people, name="prices_sdc")
    wh.ingest.ingest(people["bank_steward"], sdc_name, write_csv(tmp_path / "b.csv", _rows(20, 5)))
    copies = wh.settings.home / BOUNDED_COPIES
    files = sorted(p.name for p in copies.rglob("*.parquet")) if copies.exists() else []
    assert len(files) == 1 and files[0].endswith(".heavy.parquet")  # the (empty) heavy table of the dp dataset only


def test_a_failure_to_prepare_does_not_fail_the_load(wh, people, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    name = register(wh, people, policy=DP_POLICY)

    def broken(*_a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(dp_bounding, "prepare_version", broken)
    out = wh.ingest.ingest(people["bank_steward"], name, write_csv(tmp_path / "p.csv", _rows(5, 5)))
    assert out["status"] == "committed" and out["rows"] == 25


def test_an_sdc_ingest_with_a_unit_builds_the_version_s_unit_dictionary(wh, people, tmp_path: Path) -> None:
    name = register(wh, people, policy={"tenants": ["bank_a"], "purposes": ["credit_risk"], "privacy_unit": "code",
                                        "output": {"min_group_size": 3}})
    wh.ingest.ingest(people["bank_steward"], name, write_csv(tmp_path / "p.csv", _rows(20, 3)))
    sidecars = list((wh.settings.home / "units" / "snapshots").glob("*"))
    assert len(sidecars) == 1
    # the first query's prepare finds it (the same file, nothing new written)
    wh.queries.guard.units.prepare(_snapshot(wh, name), "code")
    assert list((wh.settings.home / "units" / "snapshots").glob("*")) == sidecars
