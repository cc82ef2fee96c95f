"""The cell-key method: consistent perturbation of released cells (``sdc.perturbation: cell_key``).

    spec = CellKey.from_rules(plan.sdc)                   # p-table, magnitude scale, top contributors
    count = spec.count(true_count, cell_key)              # + the p-table's value for (count, cell key)
    total = true_sum + spec.magnitude(cell_key, [|x_1|, |x_2|])     # the two largest contributions

Published method: the Australian Bureau of Statistics' TableBuilder (Fraser & Wooton 2005;
Thompson, Broadfoot & Elazar 2013, "Methodology for the automatic confidentialisation of
statistical outputs from remote servers at the Australian Bureau of Statistics") and the UK ONS's
Census 2021 tables (ONS, "Cell key perturbation", 2023; ``cell-key-perturbation`` on PyPI is its
frequency-table implementation and this module's test oracle).

* Every row carries a secret uniform 32-bit **record key** assigned when it lands
  (:mod:`sandbox.tables.record_keys`). A cell's **cell key** is the sum of the keys of its rows.
  The same rows always give the same cell key, whatever the query's wording, so repeats and
  rewordings get the same answer (averaging repeats learns nothing); two populations that differ
  by one row have unrelated cell keys, so their difference carries noise, not the row's value.
* **Counts** get ``ptable[pcv][cell key mod 256]`` added, where ``pcv`` is the count (counts above
  750 reuse the rows 501–750, as the ONS does). The default p-table is the ONS's published "10/5
  rule" (counts below 10 become 0, others are rounded to a multiple of 5), generated here and
  checked row by row against the package's ``ptable_10_5_rule.csv``; a generated table
  (``{max_perturbation: D, variance: V}``) draws a perturbation in ``[-min(count, D), D]`` with mean 0
  and variance V, the maximum-entropy distribution under those constraints, laid over 256 cell-key
  slots as the ABS and ONS tables are.
* **Magnitudes** (the magnitude variant of Thompson et al.): the noise of a SUM is
  ``scale · sign · Σ_{i ≤ top} m_i · x_(i)``, the ``top`` largest |contributions| ``x_(i)`` (of privacy
  units, or rows without one) each weighted by ``m_i ∈ [0.5, 1.5)`` and one sign, all drawn from the
  cell key: a function of every row's key, so it changes with any row of the cell. So the noise is at least
  ``scale / 2`` of the largest contribution: the largest contributor is never revealed more
  precisely than that, by a dominance estimate or by differencing. An AVG is the perturbed SUM
  over the (unperturbed) number of values.

Draws use BLAKE2b over the keys (a keyed hash of secret inputs; nothing here is seeded by a user).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

#: cell-key slots of a p-table row (the ONS and ABS tables use 256)
SLOTS = 256
#: p-table rows: counts 1..MAX_PCV; larger counts reuse rows REUSE_FROM..MAX_PCV
MAX_PCV = 750
REUSE_FROM = 501
#: magnitude weights of the top contributors are drawn from [LOW, LOW + 1)
LOW = 0.5


def pcv(count: int) -> int:
    """The p-table row of a count (the ONS reuses rows 501–750 for counts above 750)."""
    return count if count <= MAX_PCV else ((count - 1) % (MAX_PCV - REUSE_FROM + 1)) + REUSE_FROM


@lru_cache(maxsize=1)
def ons_10_5() -> np.ndarray:
    """The ONS "10/5 rule" p-table: row ``n`` (1..750) gives the perturbation for each of the 256
    cell-key slots; counts below 10 go to 0 and the rest to the nearest multiple of 5."""
    table = np.zeros((MAX_PCV + 1, SLOTS), dtype=np.int64)
    for n in range(1, MAX_PCV + 1):
        table[n, :] = -n if n < 10 else 5 * math.floor(n / 5 + 0.5) - n
    table.setflags(write=False)
    return table


def _max_entropy(support: np.ndarray, variance: float) -> np.ndarray:
    """Probabilities over ``support`` with mean 0 and the given variance (or the largest feasible
    one), maximising entropy: ``p(j) ∝ exp(a j + b j²)``, solved by damped Newton steps."""
    j = support.astype(float)
    feasible = -j.min() * j.max()  # the largest variance a mean-0 distribution on [min, max] has
    target = min(variance, 0.9 * feasible)
    a = b = 0.0
    for _ in range(200):
        logits = a * j + b * j * j
        p = np.exp(logits - logits.max())
        p /= p.sum()
        m1, m2 = (p * j).sum(), (p * j * j).sum()
        r = np.array([m1, m2 - target])
        if abs(r[0]) < 1e-12 and abs(r[1]) < 1e-10:
            break
        m3, m4 = (p * j ** 3).sum(), (p * j ** 4).sum()
        jac = np.array([[m2 - m1 * m1, m3 - m1 * m2], [m3 - m2 * m1, m4 - m2 * m2]])
        step = np.linalg.lstsq(jac, -r, rcond=None)[0]
        a, b = a + 0.5 * step[0], b + 0.5 * step[1]
    return p


@lru_cache(maxsize=16)
def generated(max_perturbation: int, variance: float) -> np.ndarray:
    """A p-table with perturbations in ``[-min(n, D), D]``, mean 0, variance ``V`` (where feasible)."""
    table = np.zeros((MAX_PCV + 1, SLOTS), dtype=np.int64)
    for n in range(1, MAX_PCV + 1):
        support = np.arange(-min(n, max_perturbation), max_perturbation + 1)
        p = _max_entropy(support, variance)
        # lay the distribution over the slots: slot s gets the value whose cumulative band holds it
        edges = np.concatenate([[0.0], np.cumsum(p)]) * SLOTS
        counts = np.diff(np.round(edges).astype(int))
        counts[-1] += SLOTS - counts.sum()
        table[n, :] = np.repeat(support, np.maximum(counts, 0))[:SLOTS]
    table.setflags(write=False)
    return table


def _uniform(*parts: int) -> float:
    """A uniform draw in [0, 1) from secret integers (53 bits of BLAKE2b)."""
    digest = hashlib.blake2b(b"twh.cellkey\0" + b"\0".join(p.to_bytes(16, "little", signed=True) for p in parts),
                             digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 11) / float(1 << 53)


@dataclass(frozen=True)
class CellKey:
    """The perturbation settings of one query (the strictest of the datasets it reads)."""

    ptable: str | tuple[int, float]
    scale: float
    top: int

    @classmethod
    def from_rules(cls, rules: Any) -> CellKey:
        p = rules.ptable
        ptable = p if isinstance(p, str) else (int(p.max_perturbation), float(p.variance))
        return cls(ptable, float(rules.magnitude_scale), int(rules.magnitude_top))

    def table(self) -> np.ndarray:
        return ons_10_5() if self.ptable == "ons_10_5" else generated(*self.ptable)  # type: ignore[misc]

    def count(self, count: int, cell_key: int) -> int:
        """The perturbed count: ``count + ptable[pcv(count)][cell_key mod 256]`` (never below 0)."""
        if count <= 0:
            return 0
        return max(0, count + int(self.table()[pcv(count), cell_key % SLOTS]))

    def magnitude(self, cell_key: int, top: Sequence[float]) -> float:
        """The noise to add to a SUM whose largest |contributions| are ``top`` (descending)."""
        sign = 1.0 if _uniform(cell_key, -1) < 0.5 else -1.0
        noise = 0.0
        for i, value in enumerate(list(top)[: self.top]):
            noise += (LOW + _uniform(cell_key, i)) * abs(float(value))
        return sign * self.scale * noise


def round_significant(x: float, digits: int) -> float:
    """``x`` to ``digits`` significant digits, as the float nearest that decimal (so it prints
    without binary noise: 231.402, not 231.40200000000002)."""
    if x == 0 or not math.isfinite(x):
        return x
    places = digits - 1 - math.floor(math.log10(abs(x)))
    return float(round(x, places)) if places <= 0 else float(f"{round(x, places):.{places}f}")


def round_count(n: int, base: int) -> int:
    """``n`` to the nearest multiple of ``base`` (halves up, as OpenSAFELY rounds)."""
    return n if base <= 1 else int(base * math.floor(n / base + 0.5))
