"""The SDC mode's cell decisions against ACRO's on the same tables, and secondary suppression.

ACRO (``acro`` on PyPI, the reference implementation of these rules) is run with
``suppress=True`` on a pandas frame; its per-cell outcome names the checks each cell failed.
Our decisions come from the real gate: the plan's SQL run by DuckDB over a Delta snapshot,
then :meth:`SdcRelease.assess` on the engine's rows.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from gate_fixtures import Tables, snapshot_of, table_info, write_table

from policies import SdcRules
from sandbox.gate import ENGINES, SdcRelease, plan_query, run_query
from sandbox.gate.sdc import Cell, Contribution, assess, dominated, p_percent, secondary

acro = pytest.importorskip("acro")

#: ACRO check name -> our rule name
ACRO_RULES = {"MinimumThresholdCheck": "min_group_size", "NKCheck": "dominance", "PPercentCheck": "p_percent",
              "PresenceOfZeroCheck": "zeros"}
SCHEMA = pa.schema([("firm", pa.string()), ("ind", pa.string()), ("dist", pa.string()), ("v", pa.float64())])


def firms(seed: int, n: int = 400) -> pd.DataFrame:
    """One row per firm; skewed categories (small and empty cells), lognormal values, and a few
    planted cells: one firm dominating, two firms making up nearly all of a cell."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "firm": [f"9150{seed:02d}{i:012d}" for i in range(n)],
        "ind": rng.choice(list("ABCDE"), n, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
        "dist": rng.choice(list("xyz"), n, p=[0.55, 0.4, 0.05]),
        "v": rng.lognormal(3, 1, n).round(2),
    })
    df.loc[df.index[(df.ind == "A") & (df.dist == "x")][0], "v"] = 1e6           # dominance
    pair = df.index[(df.ind == "B") & (df.dist == "y")][:2]
    df.loc[pair, "v"] = [4e5, 3.5e5]                                                 # n=2 dominance, p%
    df = df[~((df.ind == "E") & (df.dist == "z"))]                                  # an empty cell
    return df.reset_index(drop=True)


def acro_flags(df: pd.DataFrame, aggfunc: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               **appetite: Any) -> dict[tuple[str, str], set[str]]:
    monkeypatch.chdir(tmp_path)  # ACRO may write its outputs folder in the working directory
    a = acro.ACRO(suppress=True)
    a.sdc_checks.risk_appetite.update(appetite)
    if aggfunc is None:
        a.crosstab(df.ind, df.dist)
    else:
        a.crosstab(df.ind, df.dist, values=df.v, aggfunc=aggfunc)
    outcome = list(a.results.results.values())[-1].outcome
    return {(str(r), str(c)): {ours for name, ours in ACRO_RULES.items() if name in str(outcome.loc[r, c])}
            for r in outcome.index for c in outcome.columns}


def our_flags(df: pd.DataFrame, sql: str, tmp_path: Path, rules: dict[str, Any] | None = None
              ) -> tuple[dict[tuple[str, str], set[str]], Any]:
    write_table(tmp_path / "firms", df, SCHEMA)
    policy = {"tenants": ["*"], "purposes": ["x"], "privacy_unit": "firm", "sdc": rules or {},
              "columns": {"firm": "join_key", "ind": "dimension", "dist": "dimension", "v": "measure"}}
    info = table_info("firms", policy, SCHEMA)
    plan = plan_query(sql, lambda name: info)
    snaps = {"firms": snapshot_of(tmp_path / "firms", "firms")}
    rows = list(ENGINES["duckdb"](plan, snaps, None))
    verdict = SdcRelease().assess(plan, rows)
    keys = [(r[plan.hidden_indices("key")[0]], r[plan.hidden_indices("key")[1]]) for r in rows]
    flags = {k: set(f) for k, f in zip(keys, verdict.flags)}
    grid = set(itertools.product({k[0] for k in keys}, {k[1] for k in keys}))
    for k in grid - set(keys):  # empty cells: below any threshold, and zeros when disclosive
        flags[k] = {"min_group_size", "zeros"} if plan.sdc.zeros_disclosive else {"min_group_size"}
    return flags, verdict


@pytest.mark.parametrize("seed", [1, 2])
def test_frequency_table_matches_acro(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df = firms(seed)
    ours, verdict = our_flags(df, "SELECT ind, dist, COUNT(*) AS n FROM firms GROUP BY ind, dist", tmp_path)
    theirs = acro_flags(df, None, monkeypatch, tmp_path)
    assert ours == theirs
    assert verdict.zeros == sum("zeros" in f for f in theirs.values()) >= 1
    assert sum("min_group_size" in f for f in theirs.values()) >= 2  # the table exercises the threshold


@pytest.mark.parametrize(("seed", "func"), [(1, "sum"), (2, "sum"), (3, "mean")])
def test_magnitude_table_matches_acro(seed: int, func: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df = firms(seed)
    agg = "SUM" if func == "sum" else "AVG"
    ours, _ = our_flags(df, f"SELECT ind, dist, {agg}(v) AS s FROM firms GROUP BY ind, dist", tmp_path)
    theirs = acro_flags(df, func, monkeypatch, tmp_path)
    # ACRO does not check zeros on magnitude tables (its threshold catches them): compare the rest.
    assert {k: f - {"zeros"} for k, f in ours.items()} == theirs
    assert any("dominance" in f and "min_group_size" not in f for f in theirs.values())  # planted cells fire


def test_other_settings_match_acro_and_p_percent_fires_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With ACRO's defaults p% implies dominance (rest < 0.1 top1 => top2 share > 0.9); with a
    # laxer k and a stricter p the two rules differ, and each must still match ACRO.
    df = firms(4)
    cell = df.index[(df.ind == "C") & (df.dist == "x")]
    df.loc[cell, "v"] = 1.0
    df.loc[cell[:2], "v"] = [500.0, 60.0]  # rest/top1 < 0.3, top-3 share < 0.99
    rules = {"dominance_n": 3, "dominance_k": 0.99, "p_ratio": 0.3}
    ours, _ = our_flags(df, "SELECT ind, dist, SUM(v) AS s FROM firms GROUP BY ind, dist", tmp_path, rules)
    theirs = acro_flags(df, "sum", monkeypatch, tmp_path, safe_nk_n=3, safe_nk_k=0.99, safe_pratio_p=0.3)
    assert {k: f - {"zeros"} for k, f in ours.items()} == theirs
    assert "p_percent" in theirs[("C", "x")] and "dominance" not in theirs[("C", "x")]


def test_units_with_several_rows_match_acro_on_unit_totals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Contributions are per privacy unit: a firm's three loans are one contribution. ACRO, which
    # works on records, gets the per-firm totals.
    units = firms(5, n=300)
    rng = np.random.default_rng(5)
    loans = units.loc[units.index.repeat(rng.integers(1, 4, len(units)))].copy()
    loans["v"] = (loans.v * rng.uniform(0.2, 1.0, len(loans))).round(2)
    ours, _ = our_flags(loans.reset_index(drop=True), "SELECT ind, dist, SUM(v) AS s FROM firms GROUP BY ind, dist",
                        tmp_path)
    per_firm = loans.groupby(["firm", "ind", "dist"], as_index=False).v.sum()
    theirs = acro_flags(per_firm, "sum", monkeypatch, tmp_path)
    assert {k: f - {"zeros"} for k, f in ours.items()} == theirs


# ------------------------------------------------------------------ the rules on their own


def test_rule_edges() -> None:
    assert dominated(Contribution(100.0, (60.0, 30.0)), 2, 0.9)          # exactly k: suppressed (ACRO: >=)
    assert not dominated(Contribution(100.0, (60.0, 29.9)), 2, 0.9)
    assert not dominated(Contribution(0.0, (0.0, 0.0)), 2, 0.9)          # nothing to dominate
    assert p_percent(Contribution(100.0, (50.0, 45.1)), 0.1)             # 4.9 < 5
    assert not p_percent(Contribution(100.0, (50.0, 45.0)), 0.1)         # 5 is not below 5
    assert p_percent(Contribution(0.0, (0.0, 0.0)), 0.1)                 # all zeros: every value known (ACRO)
    assert not p_percent(Contribution(1.0, (1.0,)), 0.0)                 # p = 0 turns the rule off


def _lines(cells: list[Cell], d: int) -> dict[tuple[Any, ...], list[int]]:
    out: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, c in enumerate(cells):
        out[c.key[:d] + c.key[d + 1:]].append(i)
    return out


def test_secondary_suppression_leaves_no_line_with_one_hidden_cell() -> None:
    # Property-style over random 1- to 3-dimensional tables with empty cells and random sizes:
    # after secondary suppression no line (whose sum is a margin anyone may ask for) holds
    # exactly one hidden cell, unless every other cell on it is itself a margin (alone on a line).
    rng = random.Random(7)
    for trial in range(300):
        ndims = rng.randrange(1, 4)
        axes = [[f"{d}{v}" for v in range(rng.randrange(1, 5))] for d in range(ndims)]
        keys = [k for k in itertools.product(*axes) if rng.random() < 0.85]
        cells = [Cell(k, rng.choice([3, 8, 15, 40, 90])) for k in keys]
        zeros_disclosive = trial % 2 == 0
        verdict = assess(cells, 10, SdcRules(zeros_disclosive=zeros_disclosive), [None] * ndims)
        primary_set = {i for i, f in enumerate(verdict.flags) if f}
        assert primary_set <= verdict.suppressed
        assert verdict.by_rule["secondary"] == len(verdict.suppressed - primary_set)
        grid = [set(a) for a in zip(*keys)] if keys else []
        lonely = {m[0] for d in range(ndims) for m in _lines(cells, d).values() if len(m) == 1}
        for d in range(ndims):
            for members in _lines(cells, d).values():
                empty = len(grid[d]) - len(members) if zeros_disclosive else 0
                hidden = empty + sum(i in verdict.suppressed for i in members)
                if hidden == 1:
                    assert all(i in verdict.suppressed or i in lonely for i in members), (trial, d, members)


def test_margin_attack_on_a_two_way_table_fails() -> None:
    # industry x district; (F, banan) has 3 firms. With row and column totals released, a lone
    # suppressed cell is the row total less the row's released cells.
    sizes = {("C", "yubei"): 80, ("C", "banan"): 40, ("F", "yubei"): 50, ("F", "banan"): 3,
             ("G", "yubei"): 30, ("G", "banan"): 25}
    cells = [Cell(k, n) for k, n in sizes.items()]
    verdict = assess(cells, 10, SdcRules(), [None, None])
    hidden = {cells[i].key for i in verdict.suppressed}
    assert ("F", "banan") in hidden and len(hidden) == 4  # a 2x2 rectangle: its row and column partners
    for line in [[k for k in sizes if k[0] == "F"], [k for k in sizes if k[1] == "banan"]]:
        assert sum(k in hidden for k in line) >= 2


def test_zeros_are_protected_when_disclosive_and_known_when_not() -> None:
    # Declared categories C, F, G; nobody in G: the empty cell is the margin less C and F.
    cells = [Cell(("C",), 50), Cell(("F",), 30)]
    strict = assess(cells, 10, SdcRules(), [("C", "F", "G")])
    assert strict.zeros == 1 and strict.by_rule["zeros"] == 1 and strict.released == [0]
    lax = assess(cells, 10, SdcRules(zeros_disclosive=False), [("C", "F", "G")])
    assert lax.zeros == 1 and lax.by_rule["zeros"] == 0 and lax.released == [0, 1]


def test_declared_categories_reach_the_gate(tables: Tables) -> None:
    info = tables.infos["registry"]
    with_categories = type(info)(info.name, info.policy, info.columns,
                                 categories=(("industry", ("C", "F", "G", "K", "Z", "Q")),))
    plan = plan_query("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry",
                      lambda name: with_categories if name == "registry" else tables.lookup(name))
    assert plan.group_categories == (("C", "F", "G", "K", "Z", "Q"),)
    got = run_query(plan, tables.snapshots)
    zeros = next(d for d in got.decisions if d["rule"] == "zeros")
    assert zeros["suppressed"] == 1  # nobody in Q
    # Z (3 firms) and the empty Q are two hidden cells: no secondary suppression is needed
    assert {r[0] for r in got.rows} == {"C", "F", "G", "K"} and got.suppressed_groups == 2


def test_secondary_choice_does_not_depend_on_row_order() -> None:
    # The engine returns groups in any order; a reworded query must suppress the same cells, or
    # its answer and the first one together would show every cell but the primary one.
    rng = random.Random(3)
    cells = [Cell((k,), n) for k, n in [("A", 3), ("B", 40), ("C", 40), ("D", 40), ("E", 55)]]
    hidden = None
    for _ in range(20):
        order = rng.sample(cells, len(cells))
        verdict = assess(order, 10, SdcRules(), [None])
        keys = {order[i].key for i in verdict.suppressed}
        assert hidden is None or keys == hidden
        hidden = keys
    assert hidden == {("A",), ("B",)}
