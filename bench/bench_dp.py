"""Gated DP aggregate ÷ the same aggregate in plain DuckDB, on the same pinned Delta snapshot.

Two policies over one table of ``--rows`` rows and rows/10 units (1M units at 10M rows):

* row-level (no privacy unit): clamping + fixed point + discrete Laplace via OpenDP;
* unit-level (``max_rows_per_unit: 5``): the heavy-unit weights table joined in. Its one-off
  computation per snapshot is reported separately (``first_query_ms``), then queries are timed
  warm — what every later query on that snapshot costs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def bench_dp(args: argparse.Namespace, tmp: Path) -> dict:
    import duckdb
    from bench_gate import _table
    from deltalake import write_deltalake
    from run import interleaved, median_ms

    from policies import load_policy
    from sandbox import storage
    from sandbox.gate import TableInfo, plan_query, run_query
    from sandbox.gate import dp_bounding

    rows = args.rows
    path = tmp / "dp_loans"
    chunk = 2_000_000
    for start in range(0, rows, chunk):
        write_deltalake(str(path), _table(min(chunk, rows - start), max(1, rows // 10)), mode="append")
    snap = storage.pin_snapshot(path, "loans")
    cols = ("unit", "industry", "district", "amount")
    roles = {"unit": "join_key", "industry": "dimension", "district": "dimension", "amount": "measure"}
    keys = {"industry": list("CEFGHIM"), "district": [str(d) for d in range(500101, 500120)]}
    dp = {"bounds": {"amount": [0, 1000]}, "budget": {"epsilon": 100}, "epsilon_per_query": 1,
          "public_keys": keys}
    base = {"tenants": ["*"], "purposes": ["bench"], "columns": roles, "release_mode": "dp"}
    row_level = TableInfo("loans", load_policy({**base, "dp": dp}), cols)
    unit_level = TableInfo("loans", load_policy({**base, "privacy_unit": "unit",
                                                 "dp": {**dp, "max_rows_per_unit": 5}}), cols)
    sql = "SELECT industry, district, COUNT(*) AS n, SUM(amount) AS s FROM loans GROUP BY industry, district"
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in snap.files)
    raw_sql = sql.replace("FROM loans", f"FROM read_parquet([{files}])")

    def gated(info: TableInfo) -> None:
        run_query(plan_query(sql, lambda _n: info), {"loans": snap})

    def raw() -> None:
        with duckdb.connect() as con:
            con.execute(raw_sql).fetchall()

    raw(), gated(row_level)
    t_r, t_b = interleaved(lambda: gated(row_level), raw, args.repeat)
    dp_bounding._CACHE.clear()
    t0 = time.perf_counter()
    gated(unit_level)  # computes and caches the heavy-unit table of this snapshot
    first = time.perf_counter() - t0
    t_u, t_b2 = interleaved(lambda: gated(unit_level), raw, max(3, args.repeat // 2))
    return {
        "what": f"GROUP BY 2 dims (public keys), COUNT+SUM over {rows:,} rows / {rows // 10:,} units, "
                "dp-gated vs plain DuckDB on the same snapshot",
        "rows": rows, "units": rows // 10,
        "row_level_ms": median_ms(t_r), "baseline_ms": median_ms(t_b),
        "row_level_ratio": round(median_ms(t_r) / median_ms(t_b), 2),
        "unit_level_ms": median_ms(t_u), "unit_baseline_ms": median_ms(t_b2),
        "unit_level_ratio": round(median_ms(t_u) / median_ms(t_b2), 2),
        "unit_first_query_ms": round(first * 1000, 1),
        "unit_first_query_ratio": round(first * 1000 / median_ms(t_b2), 2),
    }
