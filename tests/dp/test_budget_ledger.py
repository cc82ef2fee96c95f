"""The budget ledger: reserve before running, no refunds, exact sums under real concurrency."""

from __future__ import annotations

import multiprocessing as mp
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from dp_fixtures import write_table
from sqlalchemy import select

from dp.budget import Budget, from_text
from sandbox.catalog.db import BudgetCharge, BudgetHead
from sandbox.datasets.manifest import parse_manifest
from sandbox.errors import QueryRefused
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse

MANIFEST: dict[str, Any] = {
    "name": "loans", "provider_kind": "market", "stewards": ["steward"],
    "schema": [{"name": "unit", "type": "string", "role": "join_key"},
               {"name": "industry", "type": "string", "role": "dimension"},
               {"name": "amount", "type": "float64", "role": "measure"},
               {"name": "flag", "type": "int64", "role": "measure"}],
    "policy": {"tenants": ["bank_a", "bank_b", "bank_c"], "purposes": ["x"], "privacy_unit": "unit",
               "release_mode": "dp",
               "dp": {"max_rows_per_unit": 5, "bounds": {"amount": [0, 500]},
                      "budget": {"epsilon": 1.0, "delta": 1e-6, "per_tenant": {"bank_c": 0.25}},
                      "epsilon_per_query": 0.1, "public_keys": {"industry": ["C", "F", "G"]}}},
}


def make_warehouse(home: Path, url: str = "") -> Warehouse:
    wh = Warehouse.open(Settings(home=home, database_url=url))
    admin = wh.users.principal("admin") if _has(wh, "admin") else None
    if admin is None:
        wh.users.bootstrap_admin("admin")
        admin = wh.users.principal("admin")
        wh.users.add(admin, "steward", "steward", "bank_a")
        wh.users.add(admin, "auditor", "auditor", "regulator")
        for t in ("bank_a", "bank_b", "bank_c"):
            wh.users.add(admin, f"ana_{t}", "enterprise", t)
        wh.datasets.register(wh.users.principal("steward"), parse_manifest(MANIFEST))
    return wh


def _has(wh: Warehouse, name: str) -> bool:
    try:
        wh.users.principal(name)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture
def wh(tmp_path: Path, catalog_url: str) -> Warehouse:  # catalog_url: SQLite, or PostgreSQL on the PG pass
    w = make_warehouse(tmp_path / "wh", catalog_url)
    yield w
    w.close()


def _try(wh: Warehouse, user: str, n: int) -> bool:
    try:
        wh.budgets.reserve(wh.users.principal(user), ["loans"], Budget.of("0.1"), job_id=f"job{n}")
        return True
    except QueryRefused as exc:
        assert exc.details["rule"] == "dp_budget"
        return False


def _ledger_sum(wh: Warehouse, scope: str = "*") -> tuple[Budget, Budget, int]:
    with wh.db.read() as s:
        rows = s.execute(select(BudgetCharge).where(BudgetCharge.scope == scope)).scalars().all()
        head = s.execute(select(BudgetHead).where(BudgetHead.scope == scope)).scalar_one()
    total = sum((from_text(r.epsilon, r.delta) for r in rows), Budget.zero())
    return total, from_text(head.spent_epsilon, head.spent_delta), len(rows)


def test_fifty_threads_get_exactly_ten_grants(wh: Warehouse) -> None:
    barrier = threading.Barrier(50)
    results: list[bool] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        barrier.wait()
        ok = _try(wh, "ana_bank_a" if i % 2 else "ana_bank_b", i)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 1.0 total, bank_c holds a 0.25 share: the shared pool is 0.75 -> exactly 7 grants of 0.1
    assert sum(results) == 7
    ledger, head, n = _ledger_sum(wh)
    assert n == 7 and ledger == head == Budget(Fraction(7, 10))


def _proc(home: str, url: str, start: Any, out: Any, k: int) -> None:
    w = make_warehouse(Path(home), url)
    start.wait()
    oks = []
    threads = [threading.Thread(target=lambda i=i: oks.append(_try(w, "ana_bank_a", k * 10 + i))) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(sum(oks))
    w.close()


def test_fifty_jobs_in_five_processes_get_at_most_the_budget(wh: Warehouse, tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(5), ctx.Queue()
    procs = [ctx.Process(target=_proc, args=(str(tmp_path / "wh"), wh.settings.database_url, start, out, k))
             for k in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert sum(out.get(timeout=5) for _ in procs) == 7
    ledger, head, n = _ledger_sum(wh)
    assert n == 7 and ledger == head == Budget(Fraction(7, 10))


def test_tenant_share_is_separate_and_colluders_cannot_pool(wh: Warehouse) -> None:
    assert sum(_try(wh, "ana_bank_c", i) for i in range(5)) == 2  # 0.25 share: two queries of 0.1
    assert sum(_try(wh, "ana_bank_a", i) + _try(wh, "ana_bank_b", i) for i in range(10)) == 7
    assert not _try(wh, "ana_bank_a", 99)


def test_every_reservation_is_audited_in_its_transaction(wh: Warehouse) -> None:
    _try(wh, "ana_bank_a", 1)
    recs = wh.audit_records(wh.users.principal("auditor"), action="budget.reserved")
    assert len(recs) == 1 and recs[0]["details"]["epsilon"] == "1/10"
    assert wh.audit_verify(wh.users.principal("auditor")).ok


def test_show_lists_history_and_remaining(wh: Warehouse) -> None:
    _try(wh, "ana_bank_a", 1)
    _try(wh, "ana_bank_c", 2)
    shown = wh.budgets.show(wh.users.principal("steward"), "loans")
    by_scope = {s["scope"]: s for s in shown["scopes"]}
    assert by_scope["*"]["remaining"]["epsilon"] == "0.65" and by_scope["bank_c"]["remaining"]["epsilon"] == "0.15"
    assert len(shown["history"]) == 2
    mine = wh.budgets.show(wh.users.principal("ana_bank_a"), "loans")
    # an enterprise sees totals per scope and period, never one charge (a job under review could
    # count its queries into them): the same totals here, as no job is under review
    assert mine["history"] is None
    assert {s["scope"]: s["remaining"]["epsilon"] for s in mine["scopes"]} == {"*": "0.65", "bank_c": "0.15"}


def _answer(wh: Warehouse, snap: Any, sql: str, user: str = "ana_bank_a") -> Any:
    return wh.queries.answer(wh.users.principal(user), "job-1", "x", {"loans": snap}, sql)


@pytest.fixture
def snap(tmp_path: Path) -> Any:
    return write_table(tmp_path / "t", n=3000, units=300)


def _job(wh: Warehouse) -> None:
    from sandbox.catalog.db import Job

    with wh.db.transaction() as s:
        s.add(Job(id="job-1", tenant="bank_a", submitted_by="ana_bank_a", purpose="x", datasets=["loans"],
                  state="running", code_sha256="0" * 64, spec={}))


def test_exact_repeats_return_the_stored_answer_and_averaging_is_stopped(wh: Warehouse, snap: Any) -> None:
    _job(wh)
    sql = "SELECT industry, COUNT(*) AS n FROM loans GROUP BY industry"
    first = _answer(wh, snap, sql)
    for _ in range(3):
        assert _answer(wh, snap, sql).rows == first.rows  # the ledger's answer, not fresh noise
    # renaming an output is an exact repeat too (the engine SQL is the same)
    assert _answer(wh, snap, sql.replace("AS n", "AS m")).rows == first.rows
    assert _ledger_sum(wh)[2] == 1
    # Reworded queries cost budget each; the pool (0.75) stops them after 7 answers in all.
    answers = 1
    with pytest.raises(QueryRefused) as e:
        for i in range(20):
            _answer(wh, snap, f"SELECT industry, COUNT(*) AS n FROM loans WHERE industry <> 'X{i}' GROUP BY industry")
            answers += 1
    assert e.value.details["rule"] == "dp_budget" and answers == 7


def test_no_refund_when_the_run_fails(wh: Warehouse, snap: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _job(wh)
    import sandbox.broker.queries as q
    from sandbox.errors import InternalError

    def boom(*_a: Any, **_k: Any) -> Any:
        raise InternalError("engine failed")

    monkeypatch.setattr(q, "run_query", boom)
    with pytest.raises(InternalError):
        _answer(wh, snap, "SELECT COUNT(*) AS n FROM loans")
    assert _ledger_sum(wh)[1] == Budget.of("0.1")  # reserved before the run, kept after it failed


def test_a_quantile_query_is_charged_once_and_its_split_is_stated(wh: Warehouse, snap: Any) -> None:
    _job(wh)
    r = _answer(wh, snap, "SELECT industry, MEDIAN(amount) AS med, QUANTILE_CONT(amount, 0.9) AS p90, "
                          "COUNT(*) AS n FROM loans GROUP BY industry")
    total, head, charges = _ledger_sum(wh)
    assert charges == 1 and total == head == Budget.of("0.1")  # the query's ε, once, whatever it asks
    d = next(d for d in r.decisions if d.get("rule") == "differential_privacy")
    # one histogram serves both quantiles; with the count, two statistics share the 0.1
    assert d["epsilon"] == "1/10" and d["per_statistic_epsilon"] == "1/20"
    assert {n["column"]: n["func"] for n in d["noise"]} == {"med": "quantile", "p90": "quantile", "n": "count"}


def test_the_broker_reads_heavy_units_through_a_bounded_copy_under_the_home(wh: Warehouse, snap: Any,
                                                                          tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    _job(wh)
    r = _answer(wh, snap, "SELECT industry, SUM(amount) AS s FROM loans GROUP BY industry")
    assert [row[0] for row in r.rows] == ["C", "F", "G"]
    # units here have ~10 rows, m = 5: the copy, beside the version's heavy-unit table (its cache)
    (copy,) = [p for p in (tmp_path / "wh" / "bounded").rglob("*.parquet") if not p.name.endswith(".heavy.parquet")]
    assert "unit" not in pq.read_schema(copy).names
