"""dp.synth: exact accounting, declared domains only, utility at high ε."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest

from dp.errors import DPError
from dp.noise import laplace_epsilon
from dp.synth import MAX_PAIR_CELLS, Domain, planned_edges, synthesize

N = 20_000


def _data(n: int = N, seed: int = 0) -> tuple[list[Domain], dict[str, pa.Array]]:
    rng = np.random.default_rng(seed)
    industry = rng.choice(["C", "F", "G"], n, p=[0.5, 0.3, 0.2])
    # amount depends strongly on industry; flag is independent of both
    amount = np.where(industry == "C", rng.uniform(0, 100, n), rng.uniform(300, 500, n))
    flag = (rng.random(n) < 0.3).astype(np.int64)
    domains = [Domain.categorical("industry", ["C", "F", "G"]), Domain.numeric("amount", 0, 500),
               Domain.numeric("flag", 0, 1, integer=True)]
    return domains, {"industry": pa.array(industry), "amount": pa.array(amount), "flag": pa.array(flag)}


def _tv(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a / a.sum() - b / b.sum()).sum() / 2)


def test_accounting_is_exact_and_each_release_is_within_its_share() -> None:
    domains, data = _data(2_000)
    eps = Fraction(7, 10)
    out = synthesize(domains, data, rows=500, epsilon=eps, max_rows_per_unit=3)
    assert sum(m.epsilon for m in out.measurements) == eps
    kinds = [m.what.split(":")[0] for m in out.measurements]
    # 3 one-ways, then (d - 1) selections and (d - 1) two-ways on the chosen tree
    assert kinds == ["marginal"] * 3 + ["select_edge"] * 2 + ["marginal"] * 2
    assert len(out.edges) == 2
    for m in out.measurements:
        if m.what.startswith("marginal"):  # OpenDP's own map, sensitivity m = 3: never above the share
            assert Fraction(laplace_epsilon(3, m.scale)) <= m.epsilon
    assert out.accounting()["epsilon"] == "7/10"


def test_one_column_spends_everything_on_its_marginal() -> None:
    out = synthesize([Domain.categorical("c", ["a", "b"])], {"c": pa.array(["a", "b", "a"])}, rows=10,
                     epsilon=Fraction(1), max_rows_per_unit=1)
    assert [(m.what, m.epsilon) for m in out.measurements] == [("marginal:c", Fraction(1))]
    assert out.edges == ()


def test_edges_are_planned_from_domains_alone() -> None:
    huge = Domain.categorical("huge", [str(i) for i in range(MAX_PAIR_CELLS // 2 + 1)])
    assert planned_edges([huge, Domain.categorical("b", ["x", "y", "z"])]) == 0  # 3·(2^17+1) cells: too many
    assert planned_edges([huge, Domain.categorical("b", ["x"])]) == 1


def test_marginals_and_the_strong_dependency_survive_at_high_epsilon() -> None:
    domains, data = _data()
    out = synthesize(domains, data, rows=N, epsilon=Fraction(10), max_rows_per_unit=1)
    t = out.table
    assert t.num_rows == N
    for d in domains:
        real, _ = d.encode(data[d.name])
        fake, _ = d.encode(t.column(d.name))
        assert _tv(np.bincount(real, minlength=d.size), np.bincount(fake, minlength=d.size)) < 0.05, d.name
    assert ("industry", "amount") in out.edges or ("amount", "industry") in out.edges
    ind = np.array(t.column("industry").to_pylist())
    amt = t.column("amount").to_numpy()
    assert amt[ind == "C"].mean() < 150 < 250 < amt[ind != "C"].mean()
    assert amt.min() >= 0 and amt.max() <= 500


def test_a_value_nobody_declared_never_appears() -> None:
    rng = np.random.default_rng(1)
    n = 5_000
    # one unit's rare key, plus out-of-range numbers: neither may shape the output's domain
    cats = np.append(rng.choice(["C", "F"], n), ["SECRET-FIRM"] * 3)
    amount = np.append(rng.uniform(0, 10, n), [1e9, -1e9, 5e5])
    out = synthesize([Domain.categorical("industry", ["C", "F"]), Domain.numeric("amount", 0, 10)],
                     {"industry": pa.array(cats), "amount": pa.array(amount)}, rows=5_000,
                     epsilon=Fraction(10), max_rows_per_unit=3)
    assert set(out.table.column("industry").to_pylist()) <= {"C", "F"}
    a = out.table.column("amount").to_numpy()
    assert a.min() >= 0 and a.max() <= 10


def test_nulls_only_where_declared_nullable() -> None:
    vals = pa.array([1, None, 2, 3] * 500, pa.int64())
    strict = synthesize([Domain.numeric("x", 0, 5, integer=True)], {"x": vals}, rows=2_000,
                        epsilon=Fraction(5), max_rows_per_unit=1).table.column("x")
    assert strict.null_count == 0
    loose = synthesize([Domain.numeric("x", 0, 5, integer=True, nullable=True)], {"x": vals}, rows=2_000,
                       epsilon=Fraction(5), max_rows_per_unit=1).table.column("x")
    assert 300 < loose.null_count < 700  # about a quarter
    assert set(loose.drop_null().to_pylist()) <= set(range(6))


@pytest.mark.parametrize("kw", [{"epsilon": Fraction(0)}, {"epsilon": 1.0}, {"rows": 0}])
def test_bad_parameters_are_refused(kw: dict) -> None:
    args = {"rows": 10, "epsilon": Fraction(1), "max_rows_per_unit": 1, **kw}
    with pytest.raises(DPError):
        synthesize([Domain.categorical("c", ["a"])], {"c": pa.array(["a"])}, **args)


def test_no_modelled_column_is_refused() -> None:
    with pytest.raises(DPError, match="no column"):
        synthesize([], {}, rows=10, epsilon=Fraction(1), max_rows_per_unit=1)


def test_declared_domains_are_validated() -> None:
    with pytest.raises(DPError):
        Domain.numeric("x", 5, 5)
    with pytest.raises(DPError):
        Domain.categorical("c", ["a", "a"])
    assert Domain.numeric("y", 2000, 2020, integer=True).categories == tuple(range(2000, 2021))
