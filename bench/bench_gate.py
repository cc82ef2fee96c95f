"""Gated aggregate ÷ the same aggregate in plain DuckDB, on the same pinned Delta snapshot.

The sdc mode as policies have it by default (the cell-key method: the cell key and the top
contributors' keys computed beside the aggregates, the noise added in Python), and exact
(``perturbation: none``). Also: the delta-rs dataset reader path ÷ the Parquet fast path, and
the privacy-unit threshold (two-level aggregation per unit) ÷ the row threshold.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

REPEAT = 7

import numpy as np
import pyarrow as pa


def _table(rows: int, units: int) -> pa.Table:
    rng = np.random.default_rng(1)
    industries = np.array(list("CEFGHIM"))
    return pa.table({
        "unit": pa.array(np.char.add("U", rng.integers(0, units, rows).astype("U9")) if rows <= 2_000_000
                         else rng.integers(0, units, rows).astype(str)),
        "industry": pa.array(industries[rng.integers(0, len(industries), rows)]),
        "district": pa.array(rng.integers(500101, 500120, rows).astype(str)),
        "amount": pa.array(rng.lognormal(4, 1, rows)),
    })


def bench_gate(args: argparse.Namespace, tmp: Path) -> dict:
    import duckdb
    from deltalake import write_deltalake
    from timing import interleaved, median_ms, spread

    from policies import load_policy
    from sandbox.gate import TableInfo, plan_query, run_query
    from sandbox.tables import storage
    from sandbox.tables.record_keys import RECORD_KEY, fresh_keys

    rows = args.rows or 10_000_000
    repeat = args.repeat or REPEAT
    path = tmp / "loans"
    chunk = 2_000_000
    for start in range(0, rows, chunk):
        t = _table(min(chunk, rows - start), max(1, rows // 10))  # with record keys, as landing writes them
        write_deltalake(str(path), t.append_column(pa.field(RECORD_KEY, pa.int32(), nullable=False),
                                                   fresh_keys(t.num_rows)), mode="append")
    snap = storage.pin_snapshot(path, "loans")
    cols = ("unit", "industry", "district", "amount")
    roles = {"unit": "identifier", "industry": "dimension", "district": "dimension", "amount": "measure"}
    base = {"tenants": ["*"], "purposes": ["bench"], "columns": roles}
    exact = {"sdc": {"perturbation": "none"}}
    by_rows = TableInfo("loans", load_policy({**base, **exact}), cols)
    perturbed = TableInfo("loans", load_policy(base), cols)  # the default: the cell-key method
    by_units = TableInfo("loans", load_policy({**base, "privacy_unit": "unit"}), cols)
    sql = "SELECT industry, district, COUNT(*) AS n, AVG(amount) AS mean FROM loans GROUP BY industry, district"
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in snap.files)
    raw_sql = sql.replace("FROM loans", f"FROM read_parquet([{files}])")

    def gated(info: TableInfo = by_rows, s=snap) -> None:
        run_query(plan_query(sql, lambda _n: info), {"loans": s})

    def raw() -> None:
        with duckdb.connect() as con:
            con.execute(raw_sql).fetchall()

    gated(), gated(perturbed), raw()
    t_g, t_r = interleaved(gated, raw, repeat)
    t_p, t_r3 = interleaved(lambda: gated(perturbed), raw, repeat)
    t_u, t_r2 = interleaved(lambda: gated(by_units), raw, max(3, repeat // 2))
    slow = dataclasses.replace(snap, needs_delta_reader=True)
    t_d, t_f = interleaved(lambda: gated(by_rows, slow), gated, max(3, repeat // 2))
    from timing import figure

    figures = [
        figure("gate.sdc_perturbed_over_raw", f"sdc gate as policies have it by default (cell-key perturbation) ÷ "
               f"the same GROUP BY in plain DuckDB, {rows:,} rows, same snapshot",
               [p / r for p, r in zip(t_p, t_r3, strict=True)], unit="×",
               baseline=f"plain DuckDB over the snapshot's Parquet files, median {median_ms(t_r3)} ms"),
        figure("gate.sdc_exact_over_raw", f"sdc gate without perturbation ÷ plain DuckDB, {rows:,} rows",
               [g / r for g, r in zip(t_g, t_r, strict=True)], unit="×",
               baseline=f"plain DuckDB, median {median_ms(t_r)} ms"),
    ]
    return {
        "figures": figures,
        "what": f"GROUP BY 2 dims, COUNT+AVG over {rows:,} rows, gated vs plain DuckDB on the same snapshot",
        "rows": rows, "files": len(snap.files),
        "gated_ms": median_ms(t_g), "baseline_ms": median_ms(t_r), "ratio": round(median_ms(t_g) / median_ms(t_r), 2),
        "perturbed_ms": median_ms(t_p), "perturbed_ratio": round(median_ms(t_p) / median_ms(t_r3), 2),
        "perturbed_ratio_spread": spread([p / r for p, r in zip(t_p, t_r3)]),
        "unit_threshold_ms": median_ms(t_u), "unit_threshold_ratio": round(median_ms(t_u) / median_ms(t_r2), 2),
        "unit_threshold_note": "privacy unit, perturbed (the default policy with a unit)",
        "delta_reader_ms": median_ms(t_d), "fast_path_ms": median_ms(t_f),
        "delta_reader_over_fast_path": round(median_ms(t_d) / median_ms(t_f), 2),
    }
