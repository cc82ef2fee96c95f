"""The market-data connector: OHLC price series, read through another connector and checked.

``ohlc`` wraps a file or HTTP connector (option ``via``: ``csv`` by default, ``parquet``,
``jsonl``, ``xlsx`` or ``http``; its options under ``via_options``) and adds the invariants a
price bar must hold, which declared types cannot express:

* ``low <= open <= high`` and ``low <= close <= high`` (hence ``low <= high``);
* ``volume >= 0`` (when a volume column is named);
* timestamps strictly increasing per symbol — across batches, so a duplicated or out-of-order
  bar anywhere in the file is caught.

Column names default to ``symbol, ts, open, high, low, close, volume`` and are options; the
dataset's manifest must declare them (prices ``float64``, time ``timestamp`` or ``date``).
A broken bar fails the load (or, in row-quarantine mode, is set aside with its reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from .base import SourceStream, check_bad_rows, options_from
from .errors import ConfigError
from .registry import get_source, register_source
from .schema import ColumnSpec

_VIA = ("csv", "parquet", "jsonl", "xlsx", "http")


@dataclass(frozen=True)
class OhlcOptions:
    via: str = "csv"
    via_options: dict[str, Any] = field(default_factory=dict)
    symbol: str | None = "symbol"
    time: str = "ts"
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str | None = "volume"

    def __post_init__(self) -> None:
        if self.via not in _VIA:
            raise ConfigError(f"ohlc option via must be one of {list(_VIA)}")
        if not isinstance(self.via_options, dict):
            raise ConfigError("ohlc option via_options must be a mapping")


class _Invariants:
    """The row check: stateful across batches (last timestamp per symbol)."""

    def __init__(self, o: OhlcOptions) -> None:
        self.o = o
        self.last: dict[Any, Any] = {}

    def __call__(self, batch: pa.RecordBatch, row_offset: int) -> dict[int, str]:
        o = self.o
        col = batch.column
        bad: dict[int, str] = {}
        op, hi, lo, cl = col(o.open), col(o.high), col(o.low), col(o.close)
        rules = [
            (pc.less(hi, lo), f"{o.high} < {o.low}"),
            (pc.or_(pc.less(op, lo), pc.greater(op, hi)), f"{o.open} outside [{o.low}, {o.high}]"),
            (pc.or_(pc.less(cl, lo), pc.greater(cl, hi)), f"{o.close} outside [{o.low}, {o.high}]"),
        ]
        if o.volume:
            rules.append((pc.less(col(o.volume), 0), f"{o.volume} < 0"))
        for mask, why in rules:
            for i in pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist():
                bad.setdefault(i, f"OHLC invariant broken: {why}")
        times = col(o.time).to_pylist()
        symbols = col(o.symbol).to_pylist() if o.symbol else [None] * len(times)
        for i, (sym, t) in enumerate(zip(symbols, times, strict=True)):
            if t is None:
                bad.setdefault(i, f"OHLC: {o.time} is empty")
                continue
            prev = self.last.get(sym)
            if prev is not None and not t > prev:
                bad.setdefault(i, f"OHLC: {o.time} not strictly increasing for the symbol (duplicate or out of "
                                  "order bar)")
                continue
            if i not in bad:
                self.last[sym] = t
        return bad


class OhlcSource:
    kind: ClassVar[str] = "ohlc"

    def open(self, target: str | Path | Mapping[str, Any], specs: Sequence[ColumnSpec],
             options: Mapping[str, Any] | None = None, *, bad_rows: str = "fail") -> SourceStream:
        opts: OhlcOptions = options_from(OhlcOptions, options, "ohlc")
        check_bad_rows(bad_rows)
        declared = {s.name: s.type for s in specs}
        need = [c for c in (o for o in (opts.symbol, opts.time, opts.open, opts.high, opts.low, opts.close,
                                        opts.volume) if o) if c not in declared]
        if need:
            raise ConfigError(f"ohlc: the manifest does not declare column(s) {need} (rename them with options)")
        for c in (opts.open, opts.high, opts.low, opts.close, *( [opts.volume] if opts.volume else [])):
            if declared[c] not in ("float64", "int64", "int32"):
                raise ConfigError(f"ohlc: column {c!r} must be numeric, is declared {declared[c]}")
        if declared[opts.time] not in ("timestamp", "date"):
            raise ConfigError(f"ohlc: column {opts.time!r} must be a timestamp or date")
        inner = get_source(opts.via)
        check = _Invariants(opts)
        stream = inner.open(target, specs, opts.via_options, bad_rows=bad_rows, row_check=check)  # type: ignore[call-arg]
        stream.kind = f"ohlc+{opts.via}"
        return stream


register_source("ohlc", OhlcSource)
