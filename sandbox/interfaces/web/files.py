"""Showing export files to reviewers: CSV as a table, JSON pretty-printed, the raw bytes — all paged.

A steward approves every byte of a bundle, so the review never ends at an arbitrary cut: each
view of a file is a *page* — CSV rows (:data:`ROWS_PER_PAGE`), lines of pretty JSON
(:data:`LINES_PER_PAGE`), raw bytes (:data:`RAW_BYTES_PER_PAGE`) — with its position ("rows
2001–4000 of 5000, page 2 of 3") and links to every other page; the page says "complete" only
when the whole file is on it, and the whole file can be downloaded as its exact bytes. Row and
byte counts are of the stored bytes, whose SHA-256 is recomputed here (and the bundle hash from it).

Every byte here was written by a job (an attacker, as far as we know): these functions only
parse and structure; escaping is the templates' (Jinja2 autoescape), and the page's CSP forbids
scripts and inline styles on top.

Binary files (weights, images) are shown as binary: size, SHA-256 and, for ``.safetensors``, the
tensor table (name, dtype, shape) read from the header by the safetensors library (never
``torch.load``); the whole file can be downloaded by the reviewer like any other.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ...release.exports import bundle_hash

ROWS_PER_PAGE = 2000
LINES_PER_PAGE = 2000
RAW_BYTES_PER_PAGE = 100_000
#: files shown as text when their bytes are UTF-8 without NUL; anything else is binary
TEXT_SUFFIXES = (".csv", ".json", ".txt", ".tsv", ".md", ".log")


@dataclass(frozen=True)
class Pages:
    """Where one view of a file stands: page ``page`` of ``pages``, items ``first``–``last`` of ``total``."""

    page: int
    pages: int
    first: int  # 1-based; 0 when there is nothing to show
    last: int
    total: int
    unit: str  # "rows" | "lines" | "bytes"

    @property
    def complete(self) -> bool:
        return self.pages <= 1

    @classmethod
    def of(cls, total: int, per_page: int, page: int, unit: str) -> Pages:
        pages = max(1, -(-total // per_page))
        page = min(max(1, page), pages)
        first = (page - 1) * per_page
        return cls(page, pages, first + 1 if total else 0, min(total, first + per_page), total, unit)

    @property
    def window(self) -> slice:
        return slice(max(0, self.first - 1), self.last)


@dataclass(frozen=True)
class ShownFile:
    name: str
    sha256: str
    size: int
    kind: str  # "csv" | "json" | "text" | "binary"
    text: str  # this page of the raw bytes, as text (undecodable bytes as \\xNN escapes); empty if binary
    raw: Pages = field(default_factory=lambda: Pages.of(0, RAW_BYTES_PER_PAGE, 1, "bytes"))
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # this page's rows
    total_rows: int = 0  # data rows of the whole file (the header not counted)
    table: Pages | None = None  # the CSV table's or pretty JSON's pages
    pretty: str = ""  # this page of the pretty-printed JSON
    problem: str = ""
    #: binary ``.safetensors``: one ``{"name", "dtype", "shape"}`` per tensor, and the header's metadata
    tensors: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


def is_binary(name: str, data: bytes) -> bool:
    """Binary unless the name says text and the bytes are UTF-8 text (no NUL)."""
    if not name.lower().endswith(TEXT_SUFFIXES) or b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def safetensors_header(data: bytes) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The tensors (name, dtype, shape) and metadata of a safetensors file, read by the safetensors
    library from its header (memory-mapped: no tensor is loaded, nothing is unpickled).
    Raises ``ValueError`` when the bytes are not a safetensors file or the library is missing."""
    try:
        from safetensors import safe_open
    except ImportError:  # the `train` extra is not installed here
        raise ValueError("the safetensors library is not installed") from None
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with safe_open(path, framework="numpy") as st:
            tensors = [{"name": k, "dtype": st.get_slice(k).get_dtype(), "shape": list(st.get_slice(k).get_shape())}
                       for k in st.keys()]
            metadata = dict(st.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - the library's own error types vary; the bytes are untrusted
        raise ValueError(f"not a readable safetensors file ({type(exc).__name__})") from None
    finally:
        os.unlink(path)
    return tensors, metadata


def describe_binary(name: str, data: bytes) -> dict[str, Any]:
    """What a reviewer is shown of a binary file: its size and SHA-256, and for ``.safetensors``
    its tensor table (or why it could not be read)."""
    out: dict[str, Any] = {"binary": True, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if name.lower().endswith(".safetensors"):
        try:
            out["tensors"], out["metadata"] = safetensors_header(data)
        except ValueError as exc:
            out["problem"] = str(exc)
    return out


def show_file(name: str, data: bytes, *, page: int = 1, raw_page: int = 1) -> ShownFile:
    """One page of ``name`` (table/JSON ``page``, raw bytes ``raw_page``), with the whole file's counts."""
    digest = hashlib.sha256(data).hexdigest()
    if is_binary(name, data):
        d = describe_binary(name, data)
        return ShownFile(name=name, sha256=digest, size=len(data), kind="binary", text="",
                         raw=Pages.of(len(data), RAW_BYTES_PER_PAGE, 1, "bytes"),
                         tensors=d.get("tensors", []), metadata=d.get("metadata", {}), problem=d.get("problem", ""))
    raw = Pages.of(len(data), RAW_BYTES_PER_PAGE, raw_page, "bytes")
    text = data[raw.window].decode("utf-8", "backslashreplace")
    base: dict[str, Any] = {"name": name, "sha256": digest, "size": len(data), "text": text, "raw": raw}
    lower = name.lower()
    if lower.endswith(".csv"):
        try:
            rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        except (UnicodeDecodeError, csv.Error) as exc:
            return ShownFile(kind="text", problem=f"does not parse as CSV ({type(exc).__name__})", **base)
        header, body = (rows[0], rows[1:]) if rows else ([], [])
        table = Pages.of(len(body), ROWS_PER_PAGE, page, "rows")
        return ShownFile(kind="csv", header=header, rows=body[table.window], total_rows=len(body), table=table,
                         **base)
    if lower.endswith(".json"):
        try:
            pretty = json.dumps(json.loads(data.decode("utf-8")), indent=2, ensure_ascii=False, sort_keys=True)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return ShownFile(kind="text", problem=f"does not parse as JSON ({type(exc).__name__})", **base)
        lines = pretty.split("\n")
        table = Pages.of(len(lines), LINES_PER_PAGE, page, "lines")
        return ShownFile(kind="json", pretty="\n".join(lines[table.window]), table=table, **base)
    return ShownFile(kind="text", **base)


def reviewed_bundle(files: list[ShownFile]) -> str:
    """The bundle hash of the bytes this page shows: what the steward's decision is bound to."""
    return bundle_hash([(f.name, f.sha256) for f in files])


def query_rows(queries: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The gate's decisions per query, flattened for a table: outcome, what was suppressed and why."""
    out = []
    for i, q in enumerate(queries or [], 1):
        d = q.get("details") or {}
        rules = [x for x in d.get("decisions", []) if "allowed" in x]
        suppression = [suppression_line(x) for x in d.get("decisions", []) if "suppressed" in x]
        out.append({
            "n": i, "sql": (q.get("sql") or "").strip(), "outcome": q.get("outcome"), "versions": q.get("versions") or {},
            "mode": d.get("mode", ""), "released": d.get("released_groups"), "suppressed": d.get("suppressed_groups"),
            "reason": d.get("reason", ""), "rule": d.get("rule", ""), "code": d.get("code", ""),
            "rules": rules, "suppression": suppression,
            "epsilon": d.get("epsilon") or d.get("eps"),
        })
    return out


def suppression_line(decision: dict[str, Any]) -> dict[str, Any]:
    """One suppression rule's outcome: its name, how many cells it suppressed, and its parameters."""
    params = {k: v for k, v in decision.items() if k not in ("rule", "suppressed", "released", "allowed", "reason")}
    shown = ", ".join(f"{k} {'/'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(params.items()))
    return {"rule": decision.get("rule", ""), "suppressed": decision.get("suppressed"), "params": shown}
