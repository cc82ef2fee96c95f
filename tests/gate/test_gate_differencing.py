"""Disclosure attacks at the gate: differencing, trackers, reworded repeats, margins, dominance.

``Gate`` is the sdc path of :meth:`sandbox.queries.Queries.answer` without the warehouse:
plan, repeat cache, run, then the differencing check and record in one catalog transaction.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from gate_fixtures import Tables, snapshot_of, table_info, write_table
from pyroaring import BitMap, FrozenBitMap

from sandbox.db import Database, ReleasedPopulation, UnitId
from sandbox.errors import QueryRefused
from sandbox.gate import GatedResult, plan_query, run_query
from sandbox.gate.differencing import DifferencingGuard, Ledger, entry_of, find_differencing, fingerprint


class Gate:
    def __init__(self, tables: Tables, db_path: Path) -> None:
        self.tables = tables
        self.db = Database(f"sqlite:///{db_path}")
        self.db.create_all()
        self.guard = DifferencingGuard(self.db)
        self.runs = 0

    def ask(self, sql: str) -> GatedResult:
        plan = plan_query(sql, self.tables.lookup)
        fp = fingerprint(plan, {t: self.tables.snapshots[t].version for t in plan.tables})
        cached = self.guard.cached(fp)
        if cached is not None:
            return cached
        self.runs += 1
        result = run_query(plan, self.tables.snapshots)
        with self.db.transaction() as s:
            return self.guard.record(s, plan, result, fp)


@pytest.fixture
def gate(tables: Tables, tmp_path: Path) -> Gate:
    return Gate(tables, tmp_path / "catalog.db")


def refused(gate: Gate, sql: str) -> str:
    with pytest.raises(QueryRefused) as info:
        gate.ask(sql)
    assert info.value.details["rule"] == "differencing"
    return info.value.details["shape"]


def _one_firm_date(df: pd.DataFrame) -> dt.date:
    counts = df.reg_date.value_counts()
    return counts[counts == 1].index[0]


# ------------------------------------------------------------------ differencing


def test_all_vs_all_but_one(gate: Gate, tables: Tables) -> None:
    target = _one_firm_date(tables.frames["registry"])
    gate.ask("SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry")
    assert refused(gate, f"SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry WHERE reg_date <> '{target}'") == "pair"
    # the other order too, on a fresh ledger
    other = Gate(tables, Path(str(gate.db.url).removeprefix("sqlite:///") + ".2"))
    other.ask(f"SELECT SUM(capital) AS s FROM registry WHERE reg_date <> '{target}'")
    assert refused(other, "SELECT AVG(capital) AS a FROM registry") == "pair"


def test_overlapping_date_windows(gate: Gate, tables: Tables) -> None:
    df = tables.frames["registry"]
    dates = sorted(d for d in df.reg_date if dt.date(2012, 1, 1) <= d <= dt.date(2016, 12, 31))
    gate.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN DATE '2012-01-01' AND DATE '2016-12-31'")
    # the same window but for its last three firms: differs by 3
    cut = dates[-4]
    assert refused(gate, f"SELECT COUNT(*) AS n FROM registry WHERE reg_date >= '2012-01-01' "
                         f"AND reg_date <= '{cut}'") == "pair"
    # a window shifted by a few firms at both ends
    lo, hi = dates[2], max(d for d in df.reg_date if d <= dt.date(2016, 12, 31) + dt.timedelta(days=20))
    assert 0 < sum(1 for d in df.reg_date if dt.date(2016, 12, 31) < d <= hi) + 2 < 10
    assert refused(gate, f"SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '{lo}' AND '{hi}'") == "pair"
    # a window far enough away is a new population
    gate.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN DATE '2012-01-01' AND DATE '2014-12-31'")


def test_tracker(gate: Gate, tables: Tables) -> None:
    # target: industry Z (3 firms). q(Z or yubei) + q(Z or not yubei) - q(all) = q(Z), in any order.
    all_q = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry"
    t1 = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry WHERE industry = 'Z' OR district = 'yubei'"
    t2 = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry WHERE industry = 'Z' OR district <> 'yubei'"
    df = tables.frames["registry"]
    assert 0 < (df.industry == "Z").sum() < 10
    gate.ask(all_q)
    gate.ask(t1)
    assert refused(gate, t2) == "tracker"
    late = Gate(tables, Path(str(gate.db.url).removeprefix("sqlite:///") + ".late"))
    late.ask(t1)
    late.ask(t2)  # alone, each is a large population
    assert refused(late, all_q) == "tracker"  # the union comes last


def test_group_by_with_one_firm_left_out(gate: Gate, tables: Tables) -> None:
    # No cell is near anything released, but the cells add up to q(all but Z) minus one firm.
    target = _one_firm_date(tables.frames["registry"][tables.frames["registry"].industry != "Z"])
    gate.ask("SELECT COUNT(*) AS n FROM registry WHERE industry <> 'Z'")
    assert refused(gate, f"SELECT district, COUNT(*) AS n FROM registry WHERE industry <> 'Z' "
                         f"AND reg_date <> '{target}' GROUP BY district") == "union"


def test_reworded_filters_are_the_same_population_and_repeats_are_cached(gate: Gate) -> None:
    a = gate.ask("SELECT industry, COUNT(*) AS n FROM registry WHERE reg_date >= DATE '2015-01-01' GROUP BY industry")
    b = gate.ask("SELECT industry, COUNT(*) AS n FROM registry WHERE reg_date > DATE '2014-12-31' GROUP BY industry")
    assert sorted(a.rows) == sorted(b.rows) and gate.runs == 2  # reworded: runs, same units, allowed
    c = gate.ask("SELECT industry, COUNT(*) AS n FROM registry WHERE reg_date >= DATE '2015-01-01' GROUP BY industry")
    assert c.rows == a.rows and gate.runs == 2  # exact repeat: the stored answer (same order), nothing ran
    assert c.decisions[-1]["rule"] == "repeat"
    # alias, case and spacing do not make a new query
    gate.ask("select INDUSTRY as industry, count(*) as n from registry r where r.reg_date >= date '2015-01-01' "
             "group by r.industry")
    assert gate.runs == 2


def test_ledger_is_compact_and_deduplicated(gate: Gate) -> None:
    gate.ask("SELECT district, COUNT(*) AS n FROM registry GROUP BY district")
    gate.ask("SELECT district, AVG(capital) AS c FROM registry GROUP BY district")  # same populations
    with gate.db.read() as s:
        rows = s.query(ReleasedPopulation).all()
        assert len(rows) == 4  # three districts and their union, once
        assert {r.cardinality for r in rows} >= {300}
        assert s.query(UnitId).count() == 300
        assert all(len(r.bitmap) < 2000 for r in rows)  # dense ids: a few bytes per unit at most


def test_concurrent_releases_do_not_both_slip_through(tables: Tables, tmp_path: Path) -> None:
    # Six populations pairwise within 10 units of each other, released at once: exactly one leaves.
    df = tables.frames["registry"]
    singles = list(df.reg_date.value_counts().loc[lambda c: c == 1].index[:5])
    sqls = ["SELECT COUNT(*) AS n FROM registry"] + [
        f"SELECT COUNT(*) AS n FROM registry WHERE reg_date <> '{d}'" for d in singles]
    gates = [Gate(tables, tmp_path / "shared.db") for _ in sqls]  # one catalog, separate guards
    barrier, outcomes = threading.Barrier(len(sqls)), []

    def go(g: Gate, sql: str) -> None:
        barrier.wait()
        try:
            g.ask(sql)
            outcomes.append("released")
        except QueryRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=go, args=(g, q)) for g, q in zip(gates, sqls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["released"]


# ------------------------------------------------------------------ the check on its own


def test_find_differencing_shapes() -> None:
    t = 10
    everyone = BitMap(range(1000))
    ledger = Ledger()
    ledger.add(entry_of(everyone))
    assert find_differencing(FrozenBitMap(range(1, 1000)), [ledger], t) == "pair"       # all but one
    assert find_differencing(FrozenBitMap(range(0, 1000)), [ledger], t) is None          # the same units
    assert find_differencing(FrozenBitMap(range(10, 1000)), [ledger], t) is None         # 10 apart: allowed
    assert find_differencing(FrozenBitMap(range(500)), [ledger], t) is None              # half
    ledger.add(entry_of(BitMap(range(0, 503))))                                          # C or T (C = 500..502)
    assert find_differencing(FrozenBitMap(range(500, 1000)), [ledger], t) == "tracker"   # C or not T
    assert find_differencing(FrozenBitMap(range(503, 1000)), [ledger], t) is None        # not T: a partition


# ------------------------------------------------------------------ SDC attacks through the gate


def _firms(tmp_path: Path, values: dict[str, list[float]], rules: dict[str, Any] | None = None) -> Tables:
    rows = [(f"f{g}{i}", g, v) for g, vs in values.items() for i, v in enumerate(vs)]
    df = pd.DataFrame(rows, columns=["firm", "grp", "v"])
    schema = pa.schema([("firm", pa.string()), ("grp", pa.string()), ("v", pa.float64())])
    write_table(tmp_path / "t", df, schema)
    policy = {"tenants": ["*"], "purposes": ["x"], "privacy_unit": "firm", "sdc": rules or {},
              "columns": {"firm": "join_key", "grp": "dimension", "v": "measure"}}
    info = table_info("t", policy, schema)
    return Tables({"t": info}, {"t": snapshot_of(tmp_path / "t", "t")}, {"t": df}, tmp_path)


def test_dominant_contributor_is_suppressed(tmp_path: Path) -> None:
    # Group A: one firm holds 95% of the sum; B and C are spread out.
    w = _firms(tmp_path, {"A": [95_000.0] + [5_000.0 / 29] * 29, "B": [100.0] * 30, "C": [90.0] * 25})
    got = run_query(plan_query("SELECT grp, SUM(v) AS s, COUNT(*) AS n FROM t GROUP BY grp", w.lookup), w.snapshots)
    by_rule = {d["rule"]: d["suppressed"] for d in got.decisions if "suppressed" in d}
    assert by_rule["dominance"] == 1 and by_rule["min_group_size"] == 0
    assert "A" not in [r[0] for r in got.rows]
    # secondary: A alone suppressed would be the total less B and C
    assert by_rule["secondary"] == 1 and len(got.rows) == 1
    # the count of the same groups carries no magnitude: nothing dominates it
    counts = run_query(plan_query("SELECT grp, COUNT(*) AS n FROM t GROUP BY grp", w.lookup), w.snapshots)
    assert len(counts.rows) == 3
    # AVG is a sum divided by a public count: dominance applies to it too
    avg = run_query(plan_query("SELECT grp, AVG(v) AS a FROM t GROUP BY grp", w.lookup), w.snapshots)
    assert "A" not in [r[0] for r in avg.rows]


def test_p_percent_case(tmp_path: Path) -> None:
    # Group A: two large firms and 18 tiny ones. The top two hold 82% (not dominant at k=0.9),
    # but the rest is 4% of the largest: the second firm learns the largest within 4%.
    w = _firms(tmp_path, {"A": [500.0, 320.0] + [1.0] * 18 + [0.0] * 0, "B": [100.0] * 30, "C": [80.0] * 30},
               rules={"dominance_k": 0.99})
    got = run_query(plan_query("SELECT grp, SUM(v) AS s FROM t GROUP BY grp", w.lookup), w.snapshots)
    by_rule = {d["rule"]: d["suppressed"] for d in got.decisions if "suppressed" in d}
    assert by_rule["p_percent"] == 1 and by_rule["dominance"] == 0
    assert "A" not in [r[0] for r in got.rows]


def test_small_cells_cannot_be_recovered_from_margins(tables: Tables) -> None:
    # The attacker releases the two-way table and both one-way margins, then solves every row
    # and column that has exactly one unknown cell.
    two_way = run_query(plan_query("SELECT industry, district, COUNT(*) AS n FROM registry "
                                   "GROUP BY industry, district", tables.lookup), tables.snapshots)
    by_ind = run_query(plan_query("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry",
                                  tables.lookup), tables.snapshots)
    by_dist = run_query(plan_query("SELECT district, COUNT(*) AS n FROM registry GROUP BY district",
                                   tables.lookup), tables.snapshots)
    df = tables.frames["registry"]
    truth = df.groupby(["industry", "district"]).size().to_dict()
    released = {(r[0], r[1]): r[2] for r in two_way.rows}
    assert len(released) < len(truth)  # something was suppressed
    assert two_way.suppressed_groups >= 2
    margins = {("industry", r[0]): r[1] for r in by_ind.rows} | {("district", r[0]): r[1] for r in by_dist.rows}
    recovered = {}
    for (dim, value), total in margins.items():
        line = [k for k in truth if k[0 if dim == "industry" else 1] == value]
        unknown = [k for k in line if k not in released]
        if len(unknown) == 1:
            recovered[unknown[0]] = total - sum(released[k] for k in line if k in released)
    assert recovered == {}, f"recovered {recovered}"
