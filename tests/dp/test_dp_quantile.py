"""DP quantiles in the gate's SQL: accepted forms, accuracy, refusals, and their ε recomputed."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import duckdb
import pytest
from dp_fixtures import COLUMNS, ROLES, dp_policy, info, write_table

from dp import noise, quantile
from policies import load_policy
from sandbox.errors import QueryRefused
from sandbox.gate import TableInfo, plan_query, run_query
from sandbox.tables.snapshot import Snapshot

QSQL = ("SELECT industry, MEDIAN(amount) AS med, COUNT(*) AS n, "
        "PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY amount) AS p90 FROM loans GROUP BY industry")


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return write_table(tmp_path_factory.mktemp("dpq") / "loans", n=40_000, units=4_000)


def _true(snap: Snapshot, sql: str) -> list[tuple]:
    return duckdb.sql(sql.replace("FROM loans", f"FROM read_parquet({list(snap.files)})")).fetchall()


@pytest.mark.parametrize(("expr", "alpha"), [
    ("MEDIAN(amount)", 0.5),
    ("QUANTILE_CONT(amount, 0.25)", 0.25),
    ("QUANTILE_DISC(amount, 0.9)", 0.9),
    ("QUANTILE(amount, 0.1)", 0.1),
    ("PERCENTILE_CONT(0.75) WITHIN GROUP (ORDER BY amount)", 0.75),
    ("PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY amount)", 0.5),
    ("PERCENTILE_CONT(0.2) WITHIN GROUP (ORDER BY amount DESC)", 0.8),
])
def test_every_quantile_spelling_is_one_dp_quantile(expr: str, alpha: float) -> None:
    plan = plan_query(f"SELECT {expr} AS q FROM loans", lambda _n: info(dp_policy()))
    assert plan.dp.outputs == (("quantile", 0, -1),) and plan.dp.alphas[0] == pytest.approx(alpha)
    (hist,) = plan.dp.stats
    assert hist.kind == "hist" and hist.bins == quantile.QUANTILE_BINS and (hist.lo, hist.hi) == (0, 500)
    # bins come from the declared bounds, and the rewrite stays portable SQL
    assert '"__twh_b"' in plan.engine_sql and "CASE WHEN" in plan.engine_sql
    import sqlglot

    assert "__twh_b" in sqlglot.transpile(plan.engine_sql, read="duckdb", write="spark")[0]


def test_dp_median_is_close_to_the_true_median(snap: Snapshot) -> None:
    plan = plan_query("SELECT MEDIAN(amount) AS med, QUANTILE_CONT(amount, 0.9) AS p90 FROM loans",
                      lambda _n: info(dp_policy()))
    (true_med, true_p90), = _true(snap, "SELECT MEDIAN(amount), QUANTILE_CONT(amount, 0.9) FROM loans")
    for _ in range(5):
        (med, p90), = run_query(plan, {"loans": snap}).rows
        # resolution is one bin (500/128 ≈ 3.9); the noise at ε = 1/2 moves the CDF by ~0.2%
        assert abs(med - true_med) < 0.1 * true_med
        assert abs(p90 - true_p90) < 0.1 * true_p90


def test_grouped_quantiles_with_counts_share_one_query(snap: Snapshot) -> None:
    plan = plan_query(QSQL, lambda _n: info(dp_policy()))
    truth = {k: (m, p) for k, m, p in _true(snap, "SELECT industry, MEDIAN(amount), QUANTILE_CONT(amount, 0.9) "
                                                  "FROM loans GROUP BY industry")}
    r = run_query(plan, {"loans": snap})
    assert [row[0] for row in r.rows] == ["C", "F", "G", "K"]
    for key, med, n, p90 in r.rows:
        if key == "K":  # a public key without rows: its histogram is noise only
            assert med is None or 0 <= med <= 500
            continue
        assert abs(med - truth[key][0]) < 0.15 * truth[key][0]
        # a tail quantile of a small cell carries the noise of every bin below it (and of the
        # noisy total): only its range is certain here; accuracy is tested on the whole table
        assert 0 <= p90 <= 500
        assert n > 0
    d = r.decisions[-1]
    # two statistics noised (one histogram serves both quantiles, one count): ε/2 each
    assert d["epsilon"] == "1/2" and d["per_statistic_epsilon"] == "1/4"
    q = {n["column"]: n for n in d["noise"]}
    assert q["med"]["func"] == "quantile" and q["med"]["bins"] == 128 and q["med"]["count_scale"] > 0
    assert q["med"]["count_ci95_halfwidth"] > 0 and q["p90"]["alpha"] == 0.9
    assert q["med"]["sensitivity"] == 5.0  # a unit's rows weigh at most max_rows_per_unit in all bins


def test_partition_selection_works_with_quantiles(snap: Snapshot) -> None:
    plan = plan_query("SELECT industry, MEDIAN(amount) AS med FROM loans GROUP BY industry",
                      lambda _n: info(dp_policy(public_keys={})))
    r = run_query(plan, {"loans": snap})
    assert {row[0] for row in r.rows} <= {"C", "F", "G"} and r.decisions[-1]["keys"] == "partition_selection"


def test_row_level_quantiles(tmp_path: Path) -> None:
    s = write_table(tmp_path / "loans", n=20_000)
    policy = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": ROLES, "release_mode": "dp",
                          "dp": {"bounds": {"amount": [0, 500]}, "budget": {"epsilon": 1}}})
    plan = plan_query("SELECT MEDIAN(amount) AS med FROM loans", lambda _n: TableInfo("loans", policy, COLUMNS))
    assert plan.dp.stats[0].sensitivity == 1 and "__twh_heavy" not in plan.engine_sql
    (true_med,), = _true(s, "SELECT MEDIAN(amount) FROM loans")
    (med,), = run_query(plan, {"loans": s}).rows
    assert abs(med - true_med) < 0.05 * true_med


@pytest.mark.parametrize(("sql", "rule", "needle"), [
    ("SELECT MEDIAN(amount) AS a, MEDIAN(flag) AS b FROM loans", "dp_quantile", "more than one measure"),
    ("SELECT MEDIAN(flag) AS b FROM loans", "dp_bounds", "MEDIAN/QUANTILE"),
    ("SELECT QUANTILE_CONT(amount, 1.5) AS q FROM loans", "aggregate_argument", "between 0 and 1"),
    ("SELECT QUANTILE_CONT(amount, [0.1, 0.9]) AS q FROM loans", "aggregate_argument", "literal fraction"),
    ("SELECT MEDIAN(amount * 2) AS q FROM loans", "aggregate_argument", "one measure column"),
    ("SELECT MEDIAN(industry) AS q FROM loans", "aggregate_argument", "measure"),
    ("SELECT MEDIAN(unit) AS q FROM loans", "join_key_outside_on", "join key"),
])
def test_quantile_refusals_are_named(sql: str, rule: str, needle: str) -> None:
    with pytest.raises(QueryRefused) as e:
        plan_query(sql, lambda _n: info(dp_policy()))
    assert e.value.details["rule"] == rule and needle in e.value.message


def test_sdc_mode_refuses_exact_quantiles() -> None:
    policy = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": ROLES, "privacy_unit": "unit"})
    for expr in ("MEDIAN(amount)", "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY amount)"):
        with pytest.raises(QueryRefused) as e:
            plan_query(f"SELECT {expr} AS m FROM loans", lambda _n: TableInfo("loans", policy, COLUMNS))
        assert e.value.details["rule"] == "aggregate_not_allowed" and "release mode dp" in e.value.message


# --------------------------------------------------------------------------- ε, recomputed


def test_quantile_epsilon_recomputed_in_closed_form(snap: Snapshot) -> None:
    """The release is the discrete Laplace histogram (OpenDP's map) followed by OpenDP's
    quantile post-processor: its ε is the histogram's, which must not exceed its share."""
    import opendp.prelude as dp

    plan = plan_query("SELECT MEDIAN(amount) AS med FROM loans", lambda _n: info(dp_policy()))
    d = run_query(plan, {"loans": snap}).decisions[-1]
    (entry,) = d["noise"]
    hist = plan.dp.stats[0]
    grid = math.ldexp(1.0, -hist.exponent)
    scale, sens = entry["count_scale"] / grid, round(entry["sensitivity"] / grid)
    assert sens == hist.sensitivity == 5 * 1024
    share = Fraction(d["per_statistic_epsilon"])
    assert share == Fraction(1, 2)
    assert Fraction(noise.laplace_epsilon(sens, scale)) <= share
    # the same chain built in OpenDP end to end: histogram noise >> OpenDP's quantile
    # post-processor (integer edges here: the map does not depend on them) — ε unchanged
    dp.enable_features("contrib")
    meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale)
    chained = meas >> dp.t.make_quantiles_from_counts(bin_edges=list(range(0, 129)), alphas=[0.5], TA="i64", F="f64")
    assert Fraction(chained.map(sens)) == Fraction(meas.map(sens)) <= share
    assert Fraction(noise.laplace_epsilon(sens, scale * 0.99)) > share  # calibrated tight, not loose


def test_quantile_release_satisfies_epsilon_empirically() -> None:
    """Neighbouring histograms (one row moved in or out, row-level: L1 distance 1) give output
    distributions whose probability ratio on events stays within e^ε (up to sampling error)."""
    eps = Fraction(1, 2)
    edges = quantile.bin_edges(0.0, 8.0, 8)
    a = [3, 5, 9, 4, 2, 1, 0, 1]
    b = list(a)
    b[2] += 1  # one more row in bin 2
    n = 4000

    def sample(h: list[int]) -> list[float]:
        # one OpenDP call noises n copies (coordinates are independent): n releases of h
        noisy = noise.laplace(h * n, 1, eps).values
        out = []
        for i in range(n):
            (q,) = quantile.from_noisy_counts(list(noisy[i * len(h):(i + 1) * len(h)]), edges, [0.5])
            out.append(-1.0 if q is None else q)
        return out

    sa, sb = sample(a), sample(b)
    bound = math.exp(float(eps))
    for t in (1.0, 2.0, 2.5, 3.0, 4.0, 5.0):
        pa = sum(v <= t for v in sa) / n
        pb = sum(v <= t for v in sb) / n
        if min(pa, pb) < 0.05 or max(pa, pb) > 0.95:
            continue  # too rare to estimate a ratio from n samples
        # 4 standard errors of each estimate: fails only if the mechanism leaks more than ε
        slack = 4 * (math.sqrt(pa * (1 - pa) / n) / pa + math.sqrt(pb * (1 - pb) / n) / pb)
        for p, q in ((pa, pb), (pb, pa)):
            assert math.log(p / q) <= math.log(bound) + slack
            assert math.log((1 - p) / (1 - q)) <= math.log(bound) + 4 * slack
