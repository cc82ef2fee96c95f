"""Numbers for people: thousands separators, fixed decimals where they make sense, per language.

CLDR's patterns (through Babel, imported on first use) so another language formats its own way;
exact values (ε as a fraction, hashes, ids, the exported files' bytes) are never reformatted.
"""

from __future__ import annotations

import math
import sys

from .locales import CLDR, DEFAULT, normalize

TYPE_CHECKING = False  # typing costs a few ms of every quick `twh` command
if TYPE_CHECKING:
    from typing import Any


def _locale(lang: str | None) -> str:
    return CLDR[normalize(lang) or DEFAULT]


def _is_fraction(value: Any) -> bool:
    """A ``fractions.Fraction`` — without importing ``fractions`` (with ``decimal``, ~3 ms of every
    ``twh`` start): no Fraction exists before that module is loaded."""
    fractions = sys.modules.get("fractions")
    return fractions is not None and isinstance(value, fractions.Fraction)


def fmt_number(value: Any, lang: str | None = None, *, decimals: int | None = None) -> str:
    """``1234567`` → ``1,234,567``; ``decimals=2``: ``1,234.50``; without ``decimals`` an integer
    keeps none and a float at most four. None is "—"; anything not a finite number is shown as is."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not (isinstance(value, int | float) or _is_fraction(value)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    from babel.numbers import format_decimal  # ~50 ms the first time: only when a number is shown

    loc = _locale(lang)
    if decimals is None:
        if isinstance(value, int):
            return format_decimal(value, format="#,##0", locale=loc)
        return format_decimal(float(value), format="#,##0.####", locale=loc)
    pattern = "#,##0" + ("." + "0" * decimals if decimals > 0 else "")
    return format_decimal(float(value), format=pattern, locale=loc, decimal_quantization=True)


def fmt_bytes(n: Any, lang: str | None = None) -> str:
    """A size: bytes with separators under 10 kB, else kB/MB/GB with one decimal."""
    if not isinstance(n, int) or isinstance(n, bool):
        return str(n)
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= 10 * size or (unit != "kB" and n >= size):
            return f"{fmt_number(n / size, lang, decimals=1)} {unit}"
    return f"{fmt_number(n, lang)} B"


def fmt_eps(value: Any, lang: str | None = None) -> str:
    """ε or δ as people read it: an exact fraction (``"1/3"``) as a decimal of 4 significant
    digits with the exact value beside it when it differs (``0.3333 (1/3)``)."""
    from fractions import Fraction  # with decimal, ~3 ms of every start: only when an ε is shown

    try:
        f = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return str(value)
    if f.denominator == 1:
        return fmt_number(int(f), lang)
    shown = f"{float(f):.4g}"
    exact = Fraction(shown) == f
    text = fmt_number(float(shown), lang) if "e" not in shown else shown
    return text if exact else f"{text} ({f.numerator}/{f.denominator})"
