"""The manifest's ``source:`` and ``load:`` blocks: where a dataset's data comes from and how it lands.

::

    source:                       # so that `twh ingest DATASET` (no file) re-runs the load
      kind: sql                   # a connector kind: csv parquet xlsx jsonl sql http ohlc
      url: postgresql+psycopg://reader@db.example/tax
      query: SELECT uscc, month, vat_paid FROM payments
      options: {batch_size: 50000}
    load:
      mode: merge                 # append (default) | overwrite | merge | incremental
      keys: [uscc, month]         # merge: the declared key columns
      watermark: month            # incremental: only rows above the last committed value land
      bad_rows: fail              # fail (default) | quarantine: the steward's opt-in to row-level quarantine
      max_bad_rows: 1000          # more rejected rows than this quarantines the whole load

File kinds take ``path:``; ``sql`` takes ``url:`` and ``query:`` or ``table:``; ``http`` takes
``url:``, ``resource_id:`` and ``params:``; ``ohlc`` takes the target of the kind in its
``options.via`` (``csv`` by default).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors import FILE_KINDS, SOURCES, masked_url


class LoadMode(StrEnum):
    APPEND = "append"
    OVERWRITE = "overwrite"
    MERGE = "merge"
    INCREMENTAL = "incremental"


class SourceBlock(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    path: str | None = None
    url: str | None = None
    query: str | None = None
    table: str | None = None
    resource_id: str | None = None
    params: dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> SourceBlock:
        if self.kind not in SOURCES:
            raise ValueError(f"unknown connector kind {self.kind!r}; known: {sorted(SOURCES)}")
        inner = self.inner_kind
        if inner in FILE_KINDS:
            if not self.path or any(v is not None for v in (self.url, self.query, self.table, self.resource_id)):
                raise ValueError(f"a {self.kind} source takes path: (and options:)")
        elif inner == "sql":
            if not self.url or (self.query is None) == (self.table is None) or self.path or self.resource_id:
                raise ValueError("a sql source takes url: and exactly one of query: or table:")
        elif inner == "http":
            if not self.url or self.path or self.query or self.table:
                raise ValueError("an http source takes url:, resource_id: and params:")
        return self

    @property
    def inner_kind(self) -> str:
        """The kind that reads the bytes (``ohlc`` reads through ``options.via``)."""
        return str(self.options.get("via", "csv")) if self.kind == "ohlc" else self.kind

    def target(self) -> Any:
        if self.inner_kind in FILE_KINDS:
            return self.path
        if self.inner_kind == "sql":
            return {k: v for k, v in (("url", self.url), ("query", self.query), ("table", self.table)) if v is not None}
        return {k: v for k, v in (("url", self.url), ("resource_id", self.resource_id), ("params", self.params))
                if v is not None}

    def describe(self) -> dict[str, Any]:
        """For lineage and display: never a password."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.path:
            out["path"] = self.path
        if self.url:
            out["url"] = masked_url(self.url) if self.inner_kind == "sql" else self.url
        for k in ("query", "table", "resource_id", "params"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


class LoadBlock(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: LoadMode = LoadMode.APPEND
    keys: list[str] = Field(default_factory=list)
    watermark: str | None = None
    bad_rows: str = Field(default="fail", pattern="^(fail|quarantine)$")
    max_bad_rows: int = Field(default=1000, ge=0)

    def check_columns(self, columns: dict[str, str], mode: LoadMode | None = None) -> str | None:
        """The problem with this block for the declared columns (name -> type) and mode, or None."""
        mode = mode or self.mode
        unknown = [k for k in [*self.keys, *([self.watermark] if self.watermark else [])] if k not in columns]
        if unknown:
            return f"load: unknown column(s) {unknown}"
        if mode is LoadMode.MERGE and not self.keys:
            return "load.keys: merge needs the key columns"
        if mode is LoadMode.INCREMENTAL:
            if not self.watermark:
                return "load.watermark: incremental needs a watermark column"
            if columns[self.watermark] not in ("int64", "int32", "float64", "date", "timestamp"):
                return f"load.watermark: {self.watermark!r} must be a number, date or timestamp"
        return None
