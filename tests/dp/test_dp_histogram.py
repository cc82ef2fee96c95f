"""DP histograms: GROUP BY a bucket of a clamped measure, with the key set public (from the
declared bounds and the query's literals), never from the data."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import duckdb
import pytest
from dp_fixtures import dp_policy, info, write_table

from sandbox.errors import QueryRefused
from sandbox.gate import plan_query, run_query
from sandbox.gate.engine import open_connection
from sandbox.gate.plan import BucketRef
from sandbox.tables.snapshot import Snapshot

ROOMY = {"budget": {"epsilon": 100, "delta": 1e-6}, "epsilon_per_query": 50}


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    # one unit far beyond the declared bounds [0, 500] and one below: clamped into the edge buckets
    return write_table(tmp_path_factory.mktemp("dph") / "loans",
                       extra={"unit": ["BIG", "NEG"], "industry": ["C", "C"], "amount": [1e12, -7.0], "flag": [1, 1]})


def _run(sql: str, snap: Snapshot, **dp: object):  # type: ignore[no-untyped-def]
    return run_query(plan_query(sql, lambda _n: info(dp_policy(**{**ROOMY, **dp}))), {"loans": snap})


def test_width_bucket_releases_every_bucket_the_declared_bounds_reach(snap: Snapshot) -> None:
    r = _run("SELECT WIDTH_BUCKET(amount, 100, 400, 3) AS b, COUNT(*) AS n FROM loans GROUP BY b ORDER BY b", snap)
    # below 100 -> 0, [100, 200) -> 1 ... [300, 400) -> 3, at or above 400 -> 4: all released, in order
    assert [row[0] for row in r.rows] == [0, 1, 2, 3, 4]
    d = r.decisions[-1]
    assert d["keys"] == "public" and d["epsilon"] == "50" and d["noise"][0]["column"] == "n"


def test_floor_buckets_label_lower_edges_and_follow_the_data(snap: Snapshot) -> None:
    r = _run("SELECT FLOOR(amount / 100) * 100 AS band, COUNT(*) AS n, SUM(amount) AS s FROM loans "
             "GROUP BY band ORDER BY band", snap)
    assert [row[0] for row in r.rows] == [0, 100, 200, 300, 400, 500]  # 500: values clamped to the bound
    exact = duckdb.sql(f"SELECT FLOOR(LEAST(GREATEST(amount, 0), 500) / 100) AS b, COUNT(*) FROM "
                       f"read_parquet({list(snap.files)}) GROUP BY b ORDER BY b").fetchall()
    # ε = 50: the noisy weighted counts follow the shape (heavier first bucket), not a flat artefact
    noisy = [row[1] for row in r.rows]
    assert noisy[0] > noisy[1] > noisy[2] and exact[0][1] > exact[1][1]
    assert all(isinstance(row[2], float) for row in r.rows)


def test_the_key_set_does_not_depend_on_the_data(snap: Snapshot, tmp_path: Path) -> None:
    sql = "SELECT FLOOR(amount / 50) AS k, industry, COUNT(*) AS n FROM loans GROUP BY k, industry"
    small = write_table(tmp_path / "small", n=30, units=10)  # no value above 200, no industry K
    keys = [(row[0], row[1]) for row in _run(sql, snap).rows]
    assert keys == [(row[0], row[1]) for row in _run(sql, small).rows]
    assert len(keys) == 11 * 4  # buckets 0..10 of [0, 500] x the 4 public industries, empty ones too
    # the outlier at 1e12 is clamped to 500: it never makes a key of its own (bucket 2e10)
    assert max(k for k, _ in keys) == 10


def test_histogram_needs_declared_bounds_and_few_enough_buckets() -> None:
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT WIDTH_BUCKET(flag, 0, 1, 2) AS b, COUNT(*) AS n FROM loans GROUP BY b",
                   lambda _n: info(dp_policy()))
    assert e.value.details["rule"] == "dp_bounds"  # flag has no dp.bounds: its range would come from the data
    with pytest.raises(QueryRefused) as e:  # a dimension has no declared bounds: its range is the data's
        plan_query("SELECT FLOOR(industry / 2) AS k, COUNT(*) AS n FROM loans GROUP BY k",
                   lambda _n: info(dp_policy()))
    assert e.value.details["rule"] == "dp_keys" and "measures with declared bounds" in e.value.message
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT FLOOR(amount / 0.001) AS k, COUNT(*) AS n FROM loans GROUP BY k",
                   lambda _n: info(dp_policy()))
    assert e.value.details["rule"] == "dp_keys" and "500001 buckets" in e.value.message
    with pytest.raises(QueryRefused) as e:  # with the public industries: 4 x 30,001 cells
        plan_query("SELECT FLOOR(amount / 0.0166666) AS k, industry, COUNT(*) AS n FROM loans GROUP BY k, industry",
                   lambda _n: info(dp_policy()))
    assert e.value.details["rule"] == "dp_keys"


def test_histogram_noise_is_calibrated_like_any_count(snap: Snapshot) -> None:
    hist = _run("SELECT WIDTH_BUCKET(amount, 0, 500, 5) AS b, COUNT(*) AS n FROM loans GROUP BY b", snap)
    plain = _run("SELECT industry, COUNT(*) AS n FROM loans GROUP BY industry", snap)
    # one unit's m rows weigh m * 2**10 in all, however they spread over buckets: the same L1
    # sensitivity and so the same scale as a COUNT over any other public keys
    h, p = hist.decisions[-1]["noise"][0], plain.decisions[-1]["noise"][0]
    assert h["sensitivity"] == p["sensitivity"] == 5 and h["scale"] == p["scale"]
    assert all(float(v).is_integer() for _, v in hist.rows)  # counts are rounded integers


def test_engine_bucket_index_matches_the_exact_definition(tmp_path: Path) -> None:
    """The engine computes indices in floats; on and around the edges they equal the exact ones."""
    values = [-1.0, 0.0, 0.5, 99.999, 100.0, 100.001, 249.5, 250.0, 299.99999, 300.0, 399.9, 400.0, 450.0, 500.0]
    snap = write_table(tmp_path / "edges", n=0, units=1,
                       extra={"unit": [f"U{i}" for i in range(len(values))], "industry": ["C"] * len(values),
                              "amount": values, "flag": [0] * len(values)})
    for sql, bucket in [
        ("SELECT WIDTH_BUCKET(amount, 100, 400, 6) AS b, COUNT(*) AS n FROM loans GROUP BY b",
         BucketRef("loans", "amount", "width_bucket", lo=Fraction(100), hi=Fraction(400), count=6)),
        ("SELECT FLOOR(amount / 50) AS b, COUNT(*) AS n FROM loans GROUP BY b",
         BucketRef("loans", "amount", "floor", width=Fraction(50))),
    ]:
        plan = plan_query(sql, lambda _n: info(dp_policy()))
        con = open_connection(plan, {"loans": snap})
        try:  # the engine's exact weighted counts per bucket (each unit has one row: weight 2**10)
            got = sorted((k, n // 1024) for k, n in con.execute(plan.engine_sql).fetchall())
        finally:
            con.close()
        want: dict[int, int] = {}
        for v in values:
            k = bucket.index_of(min(max(Fraction(v), Fraction(0)), Fraction(500)))
            want[k] = want.get(k, 0) + 1
        assert got == sorted(want.items()), sql
        assert {k for k, _ in got} <= set(bucket.indices(Fraction(0), Fraction(500)))


def test_bucket_label_is_exact() -> None:
    b = BucketRef("loans", "amount", "floor", width=Fraction(1, 10), scaled=True)
    assert b.label(3) == 0.3 and b.label(-2) == -0.2 and not math.isnan(b.label(0))
    assert BucketRef("loans", "amount", "floor", width=Fraction(250), scaled=True).label(3) == 750
