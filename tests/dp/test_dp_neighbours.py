"""Neighbouring datasets through the real gate: D and D + one enterprise with many extreme rows.

The engine's exact (pre-noise) statistics of the two may differ by at most each statistic's
declared L1 sensitivity, on every plan the engine may run (bounded copy, heavy-unit join, light
plan); then the released values, sampled many times on both, give an empirical ε below the claim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dp_fixtures import dp_policy, empirical_epsilon, info, write_table

from dp import noise
from sandbox.gate import plan_query
from sandbox.gate.dp_bounding import choose
from sandbox.gate.engine import open_connection
from sandbox.tables.snapshot import Snapshot

#: the added enterprise: 40 rows (m = 5) at the top of the bounds, all in one cell
INTRUDER = {"unit": ["X"] * 40, "industry": ["C"] * 40, "amount": [1e9] * 40, "flag": [1] * 40}
QUERIES = [
    "SELECT industry, COUNT(*) AS n, SUM(amount) AS s FROM loans GROUP BY industry",
    "SELECT WIDTH_BUCKET(amount, 0, 500, 5) AS b, COUNT(*) AS n, AVG(amount) AS a FROM loans GROUP BY b",
    "SELECT industry, MEDIAN(amount) AS m FROM loans GROUP BY industry",
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, Snapshot]:
    root = tmp_path_factory.mktemp("neighbours")
    # the same seeded rows in both (~10 rows per unit: every unit is heavy at m = 5), D' adds X
    return write_table(root / "d", n=3000, units=300), write_table(root / "d2", n=3000, units=300, extra=INTRUDER)


def _statistics(plan: Any, snap: Snapshot, how: str, copies: Path) -> dict[tuple, list[int]]:
    run = choose(plan, {"loans": snap}, copies if how == "bounded" else None)
    sql = {"bounded": run.sql, "join": plan.engine_sql, "light": plan.dp.light_sql}[how]
    assert how != "bounded" or run.copies  # the bounded copy really is what runs
    con = open_connection(plan, {"loans": snap}, run if how == "bounded" else None)
    try:
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    keys = len(plan.group_columns) + (1 if plan.dp.hist >= 0 else 0)
    return {tuple(r[:keys]): [int(v or 0) for v in r[keys:]] for r in rows}


@pytest.mark.parametrize("sql", QUERIES)
@pytest.mark.parametrize("how", ["bounded", "join"])
def test_one_unit_moves_each_statistic_by_at_most_its_sensitivity(pair: tuple[Snapshot, Snapshot], sql: str,
                                                                  how: str, tmp_path: Path) -> None:
    plan = plan_query(sql, lambda _n: info(dp_policy()))
    d, d2 = (_statistics(plan, s, how, tmp_path) for s in pair)
    for j, stat in enumerate(plan.dp.stats):
        l1 = sum(abs(d2.get(k, [0] * len(plan.dp.stats))[j] - d.get(k, [0] * len(plan.dp.stats))[j])
                 for k in set(d) | set(d2))
        assert l1 <= stat.sensitivity, (sql, how, stat.kind)
        # X is the worst case (m rows' worth at the bound, in one cell): the bound is met, not just respected
        assert l1 >= 0.99 * (stat.sensitivity - 1), (sql, how, stat.kind)


def test_light_plan_would_not_bound_the_intruder(pair: tuple[Snapshot, Snapshot], tmp_path: Path) -> None:
    """The control: without the weights (the light plan, valid only when no unit is heavy) X's 40 rows
    would count 40 times: the test above can fail."""
    plan = plan_query(QUERIES[0], lambda _n: info(dp_policy()))
    d, d2 = (_statistics(plan, s, "light", tmp_path) for s in pair)
    assert abs(d2[("C",)][0] - d[("C",)][0]) == 40 * 1024 > plan.dp.stats[0].sensitivity


@pytest.mark.parametrize("aggregate", ["COUNT(*)", "SUM(amount)"])
def test_released_values_of_neighbours_give_an_empirical_epsilon_below_the_claim(
        pair: tuple[Snapshot, Snapshot], tmp_path: Path, aggregate: str) -> None:
    policy = dp_policy(epsilon_per_query=1, budget={"epsilon": 10, "delta": 1e-6})
    plan = plan_query(f"SELECT industry, {aggregate} AS v FROM loans GROUP BY industry", lambda _n: info(policy))
    d, d2 = (_statistics(plan, s, "bounded", tmp_path) for s in pair)
    (stat,) = plan.dp.stats
    eps = plan.dp.epsilon  # one statistic: all of the query's ε
    n = 20_000
    a = np.array(noise.laplace([d[("C",)][0]] * n, stat.sensitivity, eps).values, dtype=float)
    b = np.array(noise.laplace([d2[("C",)][0]] * n, stat.sensitivity, eps).values, dtype=float)
    width = stat.sensitivity / float(eps) / 4  # a quarter of the noise scale per outcome bucket
    est = empirical_epsilon(a, b, width=width)
    print(f"empirical epsilon of the released {aggregate}, neighbouring datasets: {est:.3f} (claim {float(eps)})")
    assert est <= float(eps)
    assert est > 0.5 * float(eps)  # informative: the neighbours are told apart about as well as ε allows
