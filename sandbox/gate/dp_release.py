"""The ``dp`` release mode: noise the bounded statistics of :mod:`.dp_plan` with OpenDP.

The engine returns, per group, the group keys and one integer per statistic (exact weighted
counts and clamped fixed-point sums). Here:

1. **keys** — public key sets: the product of the keys is the universe, every key is released
   (a missing one as 0 before noise), keys outside it are dropped. Otherwise DP partition
   selection (:func:`dp.selection.select`, OpenDP ``make_laplace_threshold``) keeps the keys
   whose noisy count passes a δ-calibrated threshold; a key held by one unit almost never does.
2. **noise** — each statistic's vector over the released keys gets discrete Laplace noise
   (:func:`dp.noise.laplace`) calibrated to its L1 sensitivity and an equal share of the query's
   ε (partition selection's count counts as one of them and takes the δ).
3. **post-processing** — counts are rounded to integers, sums are ``k · 2**-e`` exactly (grid
   values), means are noisy sum / noisy count clamped to the bounds; rows are ordered by the
   query's ORDER BY over the *noisy* values, else by key.

The decision carries ε and δ spent, and per output column its noise scale and a 95% interval
half-width in the column's units.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from itertools import product
from typing import TYPE_CHECKING, Any

from dp import noise, quantile, selection

from .cellkey import round_significant
from .release import Released, json_safe

if TYPE_CHECKING:
    from .dp_plan import DpPlan
    from .plan import QueryPlan

ALPHA = 0.05


def _key(values: Sequence[Any]) -> str:
    return json.dumps([json_safe(v) for v in values], ensure_ascii=False, default=str)


class DpRelease:
    name = "dp"

    def release(self, plan: QueryPlan, rows: Iterable[Sequence[Any]]) -> Released:
        dpp: DpPlan = plan.dp
        if dpp is None:
            raise ValueError("a dp release needs a dp plan")
        n_groups, n_stats = len(plan.group_columns), len(dpp.stats)
        h = dpp.hist
        bins = dpp.stats[h].bins if h >= 0 else 0
        width = n_groups + n_stats + (1 if h >= 0 else 0)
        data: dict[str, tuple[list[Any], list[int]]] = {}
        hists: dict[str, list[int]] = {}  # per cell, the hist statistic's count per bin
        for row in rows:
            if len(row) != width:
                raise ValueError("engine row width does not match the plan")
            keys = list(row[:n_groups])
            values = [int(v) if v is not None else 0 for v in row[width - n_stats:]]
            k = _key(keys)
            if h < 0:
                data[k] = (keys, values)
                continue
            # rows are per (cell, bin): the other statistics are sums, so add them up over bins
            prev = data.setdefault(k, (keys, [0] * n_stats))[1]
            for j, v in enumerate(values):
                prev[j] += v
            b = row[n_groups]
            if b is not None:  # NULL values have no bin; the index is clamped into the public range
                hist = hists.setdefault(k, [0] * bins)
                hist[min(max(int(b), 0), bins - 1)] += values[h]

        n_noised = n_stats
        eps_each = dpp.epsilon / n_noised
        released_keys: list[tuple[str, list[Any]]] = []
        noisy: dict[int, dict[str, int]] = {}
        quantiles_of: dict[str, dict[float, float | None]] = {}
        scales: dict[int, float] = {}
        threshold = None
        if dpp.keys_public:
            universe = [list(p) for p in product(*[list(k or ()) for k in dpp.public_keys])]
            # keys compare as text (public keys are declared as strings, bucket indices are ints);
            # others are dropped
            by_text = {_key([str(v) for v in keys]): stats for keys, stats in data.values()}
            hist_text = {_key([str(v) for v in data[k][0]]): hv for k, hv in hists.items()}
            released_keys = [(_key([str(v) for v in keys]), keys) for keys in universe]
            values_of = {k: by_text.get(k, [0] * n_stats) for k, _ in released_keys}
            hist_of = {k: hist_text.get(k, [0] * bins) for k, _ in released_keys}
        else:
            j = dpp.selection_stat
            stat = dpp.stats[j]
            l0 = stat.sensitivity  # a unit adds >= 1 grid unit to each key it creates
            counts = {k: v[1][j] for k, v in data.items() if v[1][j] > 0}
            sel = selection.select(counts, l0=l0, linf=stat.sensitivity, l1=stat.sensitivity, epsilon=eps_each,
                                   delta=dpp.delta)
            threshold, scales[j] = sel.threshold, sel.scale
            noisy[j] = sel.counts
            released_keys = sorted(((k, data[k][0]) for k in sel.counts), key=lambda kv: kv[0])
            values_of = {k: data[k][1] for k, _ in released_keys}
            hist_of = {k: hists.get(k, [0] * bins) for k, _ in released_keys}

        order = [k for k, _ in released_keys]
        for j, stat in enumerate(dpp.stats):
            if j in noisy:
                continue
            if j == h:  # every cell's every bin, as one vector: a unit's weight is spread over them
                vec = noise.laplace([c for k in order for c in hist_of[k]], stat.sensitivity, eps_each)
                noisy_hist = {k: vec.values[i * bins:(i + 1) * bins] for i, k in enumerate(order)}
                scales[j] = vec.scale
                noisy[j] = {}
                edges = quantile.bin_edges(float(stat.lo or 0), float(stat.hi or 0), bins)
                wanted = sorted({a for a in dpp.alphas if a is not None})
                for k in order:  # post-processing: OpenDP's quantiles from each cell's noisy counts
                    counts = [math.ldexp(c, -stat.exponent) for c in noisy_hist[k]]
                    quantiles_of[k] = dict(zip(wanted, quantile.from_noisy_counts(counts, edges, wanted)))
                continue
            vec = noise.laplace([values_of[k][j] for k in order], stat.sensitivity, eps_each)
            noisy[j] = dict(zip(order, vec.values))
            scales[j] = vec.scale

        out_rows: list[list[Any]] = []
        for k, keys in released_keys:
            row: list[Any] = []
            gi = ai = 0
            for kind in dpp.item_kinds:
                if kind == "group":
                    bucket = dpp.buckets[gi] if dpp.buckets else None
                    key = keys[gi]
                    row.append(bucket.label(int(key)) if bucket is not None and key is not None else json_safe(key))
                    gi += 1
                    continue
                func, s, cnt = dpp.outputs[ai]
                alpha = dpp.alphas[ai] if dpp.alphas else None
                ai += 1
                value = (quantiles_of[k][alpha] if func == "quantile" and alpha is not None
                         else self._value(dpp, func, s, cnt, noisy, k))
                # post-processing: rounding to the policy's precision costs no privacy
                row.append(round_significant(value, plan.significant_digits)
                           if isinstance(value, float) else value)
            out_rows.append(row)
        for pos, desc in reversed(dpp.order):  # stable sorts, last key first
            out_rows.sort(key=lambda r, p=pos: (r[p] is None, r[p] if r[p] is not None else 0), reverse=desc)

        columns_noise = []
        ai = 0
        for name, kind in zip(dpp.names, dpp.item_kinds):
            if kind != "agg":
                continue
            func, s, cnt = dpp.outputs[ai]
            ai += 1
            stat = dpp.stats[s]
            unit = math.ldexp(1.0, -stat.exponent)
            scale = scales[s] * unit
            if func == "quantile":
                columns_noise.append({
                    "column": name, "func": "quantile", "alpha": dpp.alphas[ai - 1],
                    "noise": "discrete_laplace on a histogram", "bins": stat.bins,
                    "bin_width": float((stat.hi or 0) - (stat.lo or 0)) / stat.bins,
                    "count_scale": scale, "count_ci95_halfwidth": noise.laplace_ci_halfwidth(scales[s], ALPHA) * unit,
                    "sensitivity": stat.sensitivity * unit,
                    "note": "OpenDP make_quantiles_from_counts over the noisy bin counts (post-processing; "
                            "all quantiles of this column share one histogram); no closed-form interval"})
                continue
            entry: dict[str, Any] = {"column": name, "func": func, "noise": "discrete_laplace",
                                     "scale": scale, "ci95_halfwidth": noise.laplace_ci_halfwidth(scales[s], ALPHA) * unit,
                                     "grid": unit, "sensitivity": stat.sensitivity * unit}
            if func == "avg":
                entry["note"] = "noisy sum / noisy count: no closed-form interval; see the sum's and the count's"
                entry["count_scale"] = scales[cnt] * math.ldexp(1.0, -dpp.stats[cnt].exponent)
            columns_noise.append(entry)
        decision = {
            "rule": "differential_privacy",
            "epsilon": str(dpp.epsilon), "delta": str(dpp.delta if threshold is not None else Fraction(0)),
            "epsilon_float": float(dpp.epsilon),
            "delta_float": float(dpp.delta) if threshold is not None else 0.0,
            "per_statistic_epsilon": str(eps_each),
            "rows_per_unit": dpp.rows_per_unit,
            "keys": "public" if threshold is None else "partition_selection",
            "selection_threshold": threshold,
            "noise": columns_noise,
            "released": len(out_rows),
            "charged_to": list(dpp.charged),
        }
        return Released(out_rows, len(out_rows), 0, decision, columns=dpp.names)

    @staticmethod
    def _value(dpp: DpPlan, func: str, s: int, cnt: int, noisy: dict[int, dict[str, int]], k: str) -> Any:
        stat = dpp.stats[s]
        raw = noisy[s][k]
        if func == "count":
            return max(0, round(math.ldexp(raw, -stat.exponent)))
        if func == "sum":
            return math.ldexp(raw, -stat.exponent)  # exactly k * 2**-e: a grid value
        total = math.ldexp(raw, -stat.exponent)
        count = math.ldexp(noisy[cnt][k], -dpp.stats[cnt].exponent)
        if count <= 0:
            return None
        lo, hi = float(stat.lo or 0), float(stat.hi or 0)
        return min(max(total / count, lo), hi)
