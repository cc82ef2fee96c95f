"""The differencing guard's added latency per query, at 1M privacy units.

Same snapshot, same run, interleaved: the gated sdc query without the guard (no unit lists
collected) vs with it (unit lists collected, mapped to ids, bitmaps built, checked against the
ledger and recorded in a catalog transaction). The ledger holds the populations of a few
earlier queries; each timed run uses a new fingerprint so the answer cache never short-cuts it.
The first guarded run (the table version's unit dictionary built: a scan and one keyed hash
per unit, inside DuckDB) is reported on its own.

The ``span`` audit is measured two ways, in the same run: the guard with it vs without it
(``span=False``), and the time spent inside it (each call timed). On the repeated query every
population is already in the ledger and ``span`` returns at once, so the ``fresh_*`` runs ask,
alternately with and without ``span``, ``GROUP BY industry`` over a new district filter each
time: eight new populations per query, all of them audited, and recorded (the ledger grows).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def _table(rows: int, units: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    unit = rng.integers(0, units, rows)
    industries = np.array(list("CEFGHIM"))
    return pa.table({
        "unit": pa.array(np.char.add("U", unit.astype("U9"))),
        # dimensions are attributes of the unit, as in a registry
        "industry": pa.array(industries[unit % len(industries)]),
        "district": pa.array((500101 + unit % 19).astype(str)),
        "amount": pa.array(rng.lognormal(4, 1, rows)),
    })


def bench_differencing(args: argparse.Namespace, tmp: Path) -> dict:
    from deltalake import write_deltalake
    from timing import median_ms

    from policies import load_policy
    from sandbox.catalog.db import Database
    from sandbox.gate import TableInfo, differencing, plan_query, run_query
    from sandbox.gate.differencing import DifferencingGuard
    from sandbox.tables import storage

    units = args.units
    rows = 2 * units
    path = tmp / "firms"
    write_deltalake(str(path), _table(rows, units, 1), mode="append")
    snap = storage.pin_snapshot(path, "firms")
    roles = {"unit": "join_key", "industry": "dimension", "district": "dimension", "amount": "measure"}
    info = TableInfo("firms", load_policy({"tenants": ["*"], "purposes": ["bench"], "columns": roles,
                                           "privacy_unit": "unit"}), tuple(roles))
    sql = "SELECT industry, COUNT(*) AS n, AVG(amount) AS mean FROM firms WHERE district <> '500119' GROUP BY industry"
    db = Database(f"sqlite:///{tmp / 'catalog.db'}")
    db.create_all()
    guard = DifferencingGuard.for_warehouse(db, tmp / "home", tmp / "home" / "secrets")
    counter = iter(range(10**9))
    audit = differencing.span_leak
    in_span: list[float] = []  # seconds inside span_leak since the last reset

    def timed_span(*a, **k):  # noqa: ANN002, ANN003, ANN202
        t0 = time.perf_counter()
        try:
            return audit(*a, **k)
        finally:
            in_span.append(time.perf_counter() - t0)

    differencing.span_leak = timed_span

    def guarded(q: str = sql, span: bool = True) -> None:
        guard.span = span
        plan = plan_query(q, lambda _n: info)
        guard.prepare(plan, {"firms": snap})
        result = run_query(plan, {"firms": snap})
        with db.transaction() as s:
            guard.record(s, plan, result, f"bench-{next(counter)}", {"firms": snap})

    def bare() -> None:
        run_query(plan_query(sql, lambda _n: info, populations=False), {"firms": snap})

    t0 = time.perf_counter()
    guarded()  # cold: every unit enters the dictionary
    cold_ms = round((time.perf_counter() - t0) * 1000, 1)
    for where in ["district <> '500101'", "district <> '500102'", "industry <> 'C'", "industry IN ('E', 'F')"]:
        guarded(f"SELECT district, COUNT(*) AS n FROM firms WHERE {where} GROUP BY district")
    bare()
    arms = ("guarded", "bare", "nospan", "fresh", "fresh_nospan")
    times: dict[str, list[float]] = {k: [] for k in arms}
    # CPU seconds of this process (DuckDB's threads included): less swayed than wall time by
    # other work on a shared machine
    cpu: dict[str, list[float]] = {k: [] for k in arms}
    span_ms: dict[str, list[float]] = {"guarded": [], "fresh": []}
    districts = [str(500101 + i) for i in range(18)]
    fresh = iter([f"district <> '{d}'" for d in districts] + [
        f"district NOT IN ('{a}', '{b}')" for i, a in enumerate(districts) for b in districts[i + 1:]])

    def fresh_query() -> str:
        return f"SELECT industry, COUNT(*) AS n, AVG(amount) AS mean FROM firms WHERE {next(fresh)} GROUP BY industry"

    runs = {"guarded": lambda: guarded(), "bare": bare, "nospan": lambda: guarded(span=False),
            "fresh": lambda: guarded(fresh_query()), "fresh_nospan": lambda: guarded(fresh_query(), span=False)}
    for _ in range(args.repeat or 10):  # interleaved, as run.interleaved, over five arms
        for key, fn in runs.items():
            in_span.clear()
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
            if key in span_ms:
                span_ms[key].append(sum(in_span))
    differencing.span_leak = audit
    t_g, t_b = times["guarded"], times["bare"]
    with db.read() as s:
        from sandbox.catalog.db import ReleasedPopulation

        ledger = s.query(ReleasedPopulation).count()

    def added(a: str, b: str) -> float:
        return round(median_ms(times[a]) - median_ms(times[b]), 1)

    def added_cpu(a: str, b: str) -> float:
        return round(median_ms(cpu[a]) - median_ms(cpu[b]), 1)

    return {
        "what": f"GROUP BY industry, COUNT+AVG over {rows:,} rows of {units:,} units, with vs without the "
                "differencing guard (same snapshot, interleaved)",
        "units": units, "rows": rows, "ledger_populations": ledger,
        "guarded_ms": median_ms(t_g), "baseline_ms": median_ms(t_b),
        "added_ms": round(median_ms(t_g) - median_ms(t_b), 1),
        "ratio": round(median_ms(t_g) / median_ms(t_b), 2),
        "first_query_cold_dictionary_ms": cold_ms,
        "guarded_cpu_ms": median_ms(cpu["guarded"]), "baseline_cpu_ms": median_ms(cpu["bare"]),
        "added_cpu_ms": round(median_ms(cpu["guarded"]) - median_ms(cpu["bare"]), 1),
        # span: the repeated query (populations all known) and fresh ones (eight new populations)
        "nospan_ms": median_ms(times["nospan"]), "span_added_ms": added("guarded", "nospan"),
        "span_added_cpu_ms": added_cpu("guarded", "nospan"), "span_inside_ms": median_ms(span_ms["guarded"]),
        "fresh_guarded_ms": median_ms(times["fresh"]), "fresh_nospan_ms": median_ms(times["fresh_nospan"]),
        "fresh_span_added_ms": added("fresh", "fresh_nospan"),
        "fresh_span_added_cpu_ms": added_cpu("fresh", "fresh_nospan"),
        "fresh_span_inside_ms": median_ms(span_ms["fresh"]),
        "fresh_span_inside_max_ms": round(max(span_ms["fresh"]) * 1000, 1),
    }
