"""Disclosure attacks at the gate: differencing, trackers, reworded repeats, margins, dominance.

``Gate`` is the sdc path of :meth:`sandbox.broker.queries.Queries.answer` without the warehouse:
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

from sandbox.catalog.db import Database, ReleasedPopulation, UnitId
from sandbox.errors import QueryRefused
from sandbox.gate import GatedResult, plan_query, run_query
from sandbox.gate.differencing import (
    DifferencingGuard,
    Ledger,
    _meet_bound,
    _parts,
    entry_of,
    find_differencing,
    fingerprint,
    support,
)


class Gate:
    def __init__(self, tables: Tables, db_path: Path) -> None:
        self.tables = tables
        self.db = Database(f"sqlite:///{db_path}")
        self.db.create_all()
        home = db_path.with_name(db_path.name + ".home")  # one warehouse per catalog
        self.guard = DifferencingGuard.for_warehouse(self.db, home, home / "secrets")
        self.runs = 0

    def ask(self, sql: str) -> GatedResult:
        plan = plan_query(sql, self.tables.lookup)
        fp = fingerprint(plan, {t: self.tables.snapshots[t].version for t in plan.tables})
        cached = self.guard.cached(fp)
        if cached is not None:
            return cached
        self.runs += 1
        self.guard.prepare(plan, self.tables.snapshots)
        result = run_query(plan, self.tables.snapshots)
        with self.db.transaction() as s:
            return self.guard.record(s, plan, result, fp, self.tables.snapshots)


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
        assert s.query(UnitId).count() == 0  # the dictionary lives in files, under keyed hashes
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


# ------------------------------------------------------------------ three and more populations


def _lone_dates(df: pd.DataFrame, lo: dt.date, hi: dt.date) -> list[dt.date]:
    counts = df.reg_date.value_counts()
    return sorted(d for d in counts[counts == 1].index if lo < d < hi)


def test_whole_less_two_parts_in_every_release_order(tables: Tables, tmp_path: Path) -> None:
    # q(A) - q(B) - q(C) with B ∪ C = A but the one firm of day d: whichever comes last is refused.
    df = tables.frames["registry"]
    d = _lone_dates(df, dt.date(2013, 1, 1), dt.date(2020, 1, 1))[0]
    whole = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry"
    before = f"SELECT SUM(capital) AS s FROM registry WHERE reg_date < '{d}'"
    after = f"SELECT AVG(capital) AS a, COUNT(*) AS n FROM registry WHERE reg_date > '{d}'"
    for k, (first, second, last) in enumerate([(whole, before, after), (after, whole, before),
                                               (before, after, whole)]):
        g = Gate(tables, tmp_path / f"order{k}.db")
        g.ask(first)
        g.ask(second)
        assert refused(g, last) == "tracker"


def test_three_part_cover_isolates_one_firm_in_any_order(gate: Gate, tables: Tables) -> None:
    # B, C, E are disjoint and cover all but the one firm registered on day d:
    # q(all) - q(B) - q(C) - q(E) is that firm. No two of them are close to anything (no pair or tracker).
    df = tables.frames["registry"]
    d = _lone_dates(df, dt.date(2013, 1, 1), dt.date(2020, 1, 1))[0]
    a = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry"
    b = f"SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry WHERE reg_date < '{d}'"
    c = f"SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry WHERE reg_date > '{d}' AND district = 'yubei'"
    e = f"SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry WHERE reg_date > '{d}' AND district <> 'yubei'"
    assert df.district.notna().all() and (df.reg_date == d).sum() == 1
    assert min((df.reg_date < d).sum(), ((df.reg_date > d) & (df.district == "yubei")).sum(),
               ((df.reg_date > d) & (df.district != "yubei")).sum()) >= 30
    for q in (a, b, c):
        gate.ask(q)
    assert refused(gate, e) == "cover"  # the last part
    # the attack really works on what was released: all - B - C, with E, would be the firm
    late = Gate(tables, Path(str(gate.db.url).removeprefix("sqlite:///") + ".late"))
    for q in (b, c, e):
        late.ask(q)
    assert refused(late, a) == "cover"  # the whole comes last
    # reworded parts are the same populations: released
    late.ask(f"SELECT COUNT(*) AS n FROM registry WHERE reg_date <= '{d - dt.timedelta(days=1)}'")
    late.ask(f"SELECT SUM(capital) AS s FROM registry WHERE NOT (reg_date <= '{d}') AND district IN ('yubei')")


def test_overlapping_windows_sum_to_all_but_one(gate: Gate, tables: Tables) -> None:
    # q(2012-14) + q(2014-16) - q(2014) = q(2012-16); less q(2012-16 without day d): the firm of day d.
    df = tables.frames["registry"]
    d = _lone_dates(df, dt.date(2012, 1, 1), dt.date(2016, 12, 31))[0]
    gate.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2012-01-01' AND '2014-12-31'")
    gate.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2014-01-01' AND '2016-12-31'")
    gate.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2014-01-01' AND '2014-12-31'")
    assert refused(gate, f"SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2012-01-01' "
                         f"AND '2016-12-31' AND reg_date <> '{d}'") == "meet"  # s as the union of two
    # far enough apart: a new window is released
    gate.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2010-01-01' AND '2013-06-30'")


def test_intersection_of_released_windows_less_one(gate: Gate, tables: Tables) -> None:
    # q(2012-14) + q(2014-16) - q(2012-16) = q(2014); less q(2014 without day d): the firm of day d.
    df = tables.frames["registry"]
    d = _lone_dates(df, dt.date(2014, 1, 1), dt.date(2014, 12, 31))[0]
    for window in ("2012-01-01' AND '2014-12-31", "2014-01-01' AND '2016-12-31", "2012-01-01' AND '2016-12-31"):
        gate.ask(f"SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '{window}'")
    assert refused(gate, f"SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2014-01-01' "
                         f"AND '2014-12-31' AND reg_date <> '{d}'") == "meet"
    # the small part first: the two windows alone give nothing away (their overlap is not derivable)...
    late = Gate(tables, Path(str(gate.db.url).removeprefix("sqlite:///") + ".late"))
    late.ask(f"SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2014-01-01' "
             f"AND '2014-12-31' AND reg_date <> '{d}'")
    late.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2012-01-01' AND '2014-12-31'")
    late.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2014-01-01' AND '2016-12-31'")
    # ...their union would make it so
    assert refused(late, "SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2012-01-01' "
                         "AND '2016-12-31'") == "meet"
    # and with the union released before the second window, the second window is refused
    third = Gate(tables, Path(str(gate.db.url).removeprefix("sqlite:///") + ".third"))
    third.ask(f"SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2014-01-01' "
              f"AND '2014-12-31' AND reg_date <> '{d}'")
    third.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2012-01-01' AND '2014-12-31'")
    third.ask("SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2012-01-01' AND '2016-12-31'")
    assert refused(third, "SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2014-01-01' "
                          "AND '2016-12-31'") == "meet"


def test_ordinary_analysis_is_not_refused(gate: Gate) -> None:
    # margins, drill-downs, disjoint and overlapping filters far apart, totals, reworded repeats
    for sql in [
        "SELECT COUNT(*) AS n, AVG(capital) AS c FROM registry",
        "SELECT district, COUNT(*) AS n FROM registry GROUP BY district",
        "SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry",
        "SELECT industry, AVG(capital) AS c FROM registry WHERE district = 'yubei' GROUP BY industry",
        "SELECT COUNT(*) AS n FROM registry WHERE district IN ('yubei', 'jiangbei')",
        "SELECT COUNT(*) AS n FROM registry WHERE district <> 'banan'",  # reworded: the same units
        "SELECT active, COUNT(*) AS n FROM registry GROUP BY active",
        "SELECT COUNT(*) AS n FROM registry WHERE reg_date < DATE '2015-01-01'",
        "SELECT COUNT(*) AS n FROM registry WHERE reg_date >= DATE '2015-01-01'",
        "SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN DATE '2012-01-01' AND DATE '2017-12-31'",
        "SELECT district, SUM(capital) AS s FROM registry WHERE industry = 'C' GROUP BY district",
    ]:
        gate.ask(sql)


def test_ids_are_stable_across_versions_and_tables(tables: Tables, tmp_path: Path) -> None:
    # A new version with one more firm: q(all, v1) - q(all, v0) is that firm.
    from gate_fixtures import REGISTRY_TYPES
    from gate_fixtures import Tables as T

    df = tables.frames["registry"]
    write_table(tmp_path / "registry", df, REGISTRY_TYPES)
    extra = df.iloc[[0]].assign(uscc="91500000NEWFIRM001", industry="K")
    v0 = snapshot_of(tmp_path / "registry", "registry")
    write_table(tmp_path / "registry", extra, REGISTRY_TYPES, mode="append")
    v1 = snapshot_of(tmp_path / "registry", "registry")
    assert v1.version == v0.version + 1
    infos = {"registry": tables.infos["registry"]}
    g0 = Gate(T(infos, {"registry": v0}, {"registry": df}, tmp_path), tmp_path / "c.db")
    g1 = Gate(T(infos, {"registry": v1}, {"registry": df}, tmp_path), tmp_path / "c.db")
    g0.ask("SELECT COUNT(*) AS n FROM registry")
    assert refused(g1, "SELECT COUNT(*) AS n FROM registry") == "pair"
    # (with ids that moved, the two would differ by hundreds and pass.) The same firms on both
    # versions are the same population: released.
    g0.ask("SELECT COUNT(*) AS n FROM registry WHERE industry = 'C'")
    g1.ask("SELECT COUNT(*) AS n FROM registry WHERE industry = 'C'")


# ------------------------------------------------------------------ the ledger holds no unit values


def test_no_unit_value_in_the_catalog(gate: Gate, tables: Tables) -> None:
    gate.ask("SELECT district, COUNT(*) AS n FROM registry GROUP BY district")
    gate.ask("SELECT industry, AVG(capital) AS c FROM registry GROUP BY industry")
    db_file = Path(str(gate.db.url).removeprefix("sqlite:///"))
    catalog = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*") if p.is_file())
    home = db_file.with_name(db_file.name + ".home")
    sidecars = b"".join(p.read_bytes() for p in (home / "units").rglob("*") if p.is_file())
    values = list(tables.frames["registry"].uscc)
    assert values and len(catalog) > 10_000 and len(sidecars) > 1000
    assert not [v for v in values if v.encode() in catalog or v.encode() in sidecars]
    with gate.db.read() as s:
        assert s.query(ReleasedPopulation).count() > 0 and s.query(UnitId).count() == 0


def test_legacy_unit_ids_move_to_keyed_hashes_with_their_ids(gate: Gate, tables: Tables) -> None:
    # A ledger written with the old raw-value table: its ids survive, the values leave the catalog.
    values = list(tables.frames["registry"].uscc)
    with gate.db.transaction() as s:
        s.add_all(UnitId(id=1000 + i, value=v) for i, v in enumerate(reversed(values)))
        s.add(ReleasedPopulation(dataset="registry", cardinality=len(values), digest="legacy",
                                 bitmap=FrozenBitMap(range(1000, 1000 + len(values))).serialize()))
    d = _one_firm_date(tables.frames["registry"])
    assert refused(gate, f"SELECT COUNT(*) AS n FROM registry WHERE reg_date <> '{d}'") == "pair"
    with gate.db.read() as s:
        assert s.query(UnitId).count() == 0


def test_find_differencing_cover_and_meet() -> None:
    t = 10
    ledger = Ledger()
    for part in (range(0, 300), range(300, 600), range(600, 999)):  # all but unit 999, in three parts
        ledger.add(entry_of(BitMap(part)))
    assert find_differencing(FrozenBitMap(range(1000)), [ledger], t) == "cover"
    assert find_differencing(FrozenBitMap(range(999)), [ledger], t) is None             # exactly the union
    assert find_differencing(FrozenBitMap(range(1100)), [ledger], t) is None            # 101 more: allowed
    whole = Ledger()
    for e in (range(1000), range(0, 300), range(300, 600)):
        whole.add(entry_of(BitMap(e)))
    assert find_differencing(FrozenBitMap(range(600, 999)), [whole], t) == "cover"      # the last part
    assert find_differencing(FrozenBitMap(range(600, 1000)), [whole], t) is None        # a partition
    meet = Ledger()
    for e in (range(0, 600), range(400, 1000)):                                         # a ∩ b: 400..599
        meet.add(entry_of(BitMap(e)))
    assert find_differencing(FrozenBitMap(range(401, 600)), [meet], t) is None          # a ∩ b not derivable
    meet.add(entry_of(BitMap(range(1000))))                                             # a ∪ b: now it is
    assert find_differencing(FrozenBitMap(range(401, 600)), [meet], t) == "meet"
    assert find_differencing(FrozenBitMap(range(400, 600)), [meet], t) is None          # exactly a ∩ b
    assert support([BitMap(range(0, 600)), BitMap(range(400, 1000))],
                   [BitMap(range(1000)), BitMap(range(401, 600))]) == BitMap([400])


def test_the_meet_bound_never_exceeds_the_support() -> None:
    """The ``meet`` search skips a pair when a bound from counts alone reaches the threshold: the
    bound must never be above the true support, or a pair that discloses would be skipped."""
    import random
    rng = random.Random(7)
    for _ in range(4000):
        universe = range(rng.randint(4, 40))
        a, b, v, m = (BitMap(u for u in universe if rng.random() < rng.random()) for _ in range(4))
        both = a & b
        bound = _meet_bound(len(a) + len(b) - 2 * len(both), len(both),
                            _parts(v, a, b, both), _parts(m, a, b, both))
        assert bound <= len(support([a, b], [v, m])), (a, b, v, m)


def test_the_pruned_meet_search_finds_what_the_unpruned_one_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random ledgers of overlapping populations, many of them one or two units from a leak: the
    search with the count bound names the same shape as the same search with the bound off."""
    import random

    import sandbox.gate.differencing as differencing
    rng = random.Random(11)

    def some(k: int) -> BitMap:
        return BitMap(rng.sample(range(80), k))

    def jiggle(x: BitMap) -> FrozenBitMap:  # up to two units in or out: a leak, or just not one
        return FrozenBitMap(BitMap(x) ^ BitMap(rng.sample(range(80), rng.randint(0, 2))))

    cases = []
    for i in range(240):
        a, b = some(rng.randint(25, 45)), some(rng.randint(25, 45))
        ledger = Ledger()
        noise = [some(rng.randint(10, 50)) for _ in range(rng.randint(0, 4))]
        if i % 3 == 0:    # s the small part: a, b and a ∪ b released; s ~ a ∩ b
            known, s = [a, b, a | b], jiggle(a & b)
        elif i % 3 == 1:  # s one of two overlapping: e, v ~ s ∪ e and m ~ s ∩ e released
            known, s = [b, jiggle(a | b), jiggle(a & b)], FrozenBitMap(a)
        else:             # s the union: a, b and m ~ a ∩ b released; s ~ a ∪ b
            known, s = [a, b, jiggle(a & b)], jiggle(a | b)
        for x in known + noise:
            if len(x):
                ledger.add(entry_of(BitMap(x)))
        cases.append((s, ledger))
    pruned = [find_differencing(s, [ledger], 4, span=False) for s, ledger in cases]
    monkeypatch.setattr(differencing, "_meet_bound", lambda *a: 0)
    unpruned = [find_differencing(s, [ledger], 4, span=False) for s, ledger in cases]
    assert pruned == unpruned
    assert unpruned.count("meet") >= 3, unpruned  # the comparison covers the shape the bound prunes


# ------------------------------------------------------------------ any weights: the span audit


def test_a_weight_of_two_isolates_a_firm(tables: Tables, tmp_path: Path) -> None:
    # thirds of 2010-18 by date and one firm d after them:
    # q(2010-15 or d) + q(2013-18) + q(2010-12 or 2016-18) - 2 q(2010-18) = q(d), in any order
    df = tables.frames["registry"]
    d = _lone_dates(df, dt.date(2019, 1, 1), dt.date(2023, 1, 1))[0]
    q = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM registry WHERE "
    parts = [q + f"reg_date < '2016-01-01' OR reg_date = '{d}'",
             q + "reg_date >= '2013-01-01' AND reg_date < '2019-01-01'",
             q + "reg_date < '2013-01-01' OR (reg_date >= '2016-01-01' AND reg_date < '2019-01-01')",
             q + "reg_date < '2019-01-01'"]
    for k, last in enumerate(parts):
        g = Gate(tables, tmp_path / f"order{k}.db")
        for sql in parts:
            if sql != last:
                g.ask(sql)
        assert refused(g, last) == "span"


def test_windows_and_their_overlaps_less_one_firm(gate: Gate, tables: Tables) -> None:
    # q(2010-13) + q(2013-16) + q(2016-) - q(2013) - q(2016) = q(all); less q(all but d): the firm of day d
    df = tables.frames["registry"]
    d = _lone_dates(df, dt.date(2010, 1, 1), dt.date(2013, 1, 1))[0]
    q = "SELECT COUNT(*) AS n FROM registry WHERE "
    for window in ("reg_date < '2014-01-01'", "reg_date BETWEEN '2013-01-01' AND '2016-12-31'",
                   "reg_date >= '2016-01-01'", "reg_date BETWEEN '2013-01-01' AND '2013-12-31'",
                   "reg_date BETWEEN '2016-01-01' AND '2016-12-31'"):
        gate.ask(q + window)
    assert refused(gate, q + f"reg_date <> '{d}'") == "span"
    # the same windows with ten firms left out instead: allowed
    tens = _lone_dates(df, dt.date(2010, 1, 1), dt.date(2013, 1, 1))[:10]
    assert len(tens) == 10
    gate.ask(q + "reg_date NOT IN (" + ", ".join(f"'{x}'" for x in tens) + ")")


def test_overlapping_parts_sticking_out_of_the_whole(gate: Gate, tables: Tables) -> None:
    # whole: before 2020; parts overlap (2013 and 2016 released) and the last one runs past 2020
    # (that rest released too) but skips day d: whole - parts + overlaps + rest = the firm of day d
    df = tables.frames["registry"]
    d = _lone_dates(df, dt.date(2017, 1, 1), dt.date(2020, 1, 1))[0]
    q = "SELECT COUNT(*) AS n, AVG(capital) AS c FROM registry WHERE "
    for where in ("reg_date < '2014-01-01'", "reg_date BETWEEN '2013-01-01' AND '2016-12-31'",
                  f"reg_date >= '2016-01-01' AND reg_date <> '{d}'", "reg_date BETWEEN '2013-01-01' AND '2013-12-31'",
                  "reg_date BETWEEN '2016-01-01' AND '2016-12-31'", "reg_date >= '2020-01-01'"):
        gate.ask(q + where)
    assert refused(gate, q + "reg_date < '2020-01-01'") == "span"


def test_margins_of_a_two_way_table_with_small_cells_are_allowed(gate: Gate) -> None:
    # every (district, year range) cell is a small atom; no combination of margins isolates one
    for sql in ["SELECT district, COUNT(*) AS n FROM registry GROUP BY district",
                "SELECT COUNT(*) AS n FROM registry WHERE reg_date < '2014-01-01'",
                "SELECT COUNT(*) AS n FROM registry WHERE reg_date BETWEEN '2012-01-01' AND '2017-12-31'",
                "SELECT COUNT(*) AS n FROM registry WHERE reg_date >= '2016-01-01'",
                "SELECT district, COUNT(*) AS n FROM registry WHERE reg_date >= '2015-01-01' GROUP BY district",
                "SELECT COUNT(*) AS n FROM registry WHERE reg_date < '2015-01-01' AND district <> 'banan'"]:
        gate.ask(sql)
