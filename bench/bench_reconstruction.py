"""The reconstruction experiment behind the sdc defaults (``magnitude_scale``, ``release_budget``).

An analyst picks a pool of 40 firms it can name by a public, near-unique dimension (registration
date), asks SUM(vat) over ``m`` random halves of the pool (one month of the demo's tax data),
and solves least squares for each firm's value (Dinur & Nissim 2003). Exact releases give every
value exactly from m = 40. With the cell-key method each sum carries noise of about
``magnitude_scale`` times its two largest contributions, drawn from the cell's record keys (the
gate's own :class:`sandbox.gate.cellkey.CellKey` and rounding, applied here as the release does);
more equations average it away, which is what the release budget (distinct populations per
tenant and period) bounds. Printed: the median relative error of the reconstructed values and the
share of firms recovered to within 1% and 5%, per scale and per m, over several pools. The
differencing guard, which refuses some of these queries, is not simulated: the figures are for an
attacker who gets every answer.

    python bench/run.py reconstruction
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def bench_reconstruction(args: argparse.Namespace, workdir: Path) -> dict:
    import numpy as np

    from sandbox.demo.generate import generate
    from sandbox.gate.cellkey import CellKey, round_significant

    files = generate(workdir / "demo", n_enterprises=2000, seed=7)
    import pandas as pd

    tax = pd.read_csv(files["tax_payments"])
    period = sorted(tax.period.unique())[6]
    values = tax[(tax.period == period) & (tax.vat_paid > 0)].vat_paid.to_numpy(float)
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    pools, n = args.pools, 40
    ms = [40, 60, 100, 200, 400, 1000, 2000]
    out: dict = {"pool_size": n, "pools": pools, "period": str(period), "rows": []}
    for scale in (0.1, 0.2):
        spec = CellKey("ons_10_5", scale, 2)
        for m in ms:
            errs = []
            for _ in range(pools):
                x = rng.choice(values, n, replace=False)
                keys = rng.integers(0, 2 ** 32, n)
                a = np.zeros((m, n))
                b = np.zeros(m)
                for q in range(m):
                    half = rng.choice(n, n // 2, replace=False)
                    a[q, half] = 1
                    top = sorted((abs(x[i]) for i in half), reverse=True)[:2]
                    noisy = x[half].sum() + spec.magnitude(int(keys[half].sum()), top)
                    b[q] = round_significant(noisy, 4)
                est, *_ = np.linalg.lstsq(a, b, rcond=None)
                errs.extend(np.abs(est - x) / x)
            errs = np.array(errs)
            out["rows"].append({"scale": scale, "m": m, "median_rel_error": round(float(np.median(errs)), 4),
                                "within_1pct": round(float((errs < 0.01).mean()), 4),
                                "within_5pct": round(float((errs < 0.05).mean()), 4)})
            print(f"scale {scale:.2f}  m {m:5d}  median error {np.median(errs):7.2%}  "
                  f"within 1% {(errs < 0.01).mean():6.1%}  within 5% {(errs < 0.05).mean():6.1%}", flush=True)
    out["figures"] = []
    out["table"] = {"title": "reconstruction of 40 firms' VAT from m random half-sums (least squares), cell-key "
                             f"noise at magnitude_scale 0.1 and 0.2, {pools} pools per point",
                    "columns": ["scale", "m (queries)", "median relative error", "within 1%", "within 5%"],
                    "rows": [[r["scale"], r["m"], r["median_rel_error"], r["within_1pct"], r["within_5pct"]]
                             for r in out["rows"]]}
    return out
