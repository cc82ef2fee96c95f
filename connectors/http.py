"""The HTTP connector: paged JSON APIs as open-data portals expose them (CKAN ``datastore_search``).

Target::

    {"url": "https://data.example.gov.cn/api/3/action/datastore_search", "resource_id": "abc", "params": {...}}

Each page is ``GET url?resource_id=..&offset=..&limit=..`` answering
``{"success": true, "result": {"records": [...], "total": N}}``.

* Timeouts and 5xx answers are retried ``retries`` times with exponential back-off; 4xx, a
  non-JSON body or ``success: false`` fail at once.
* A source that changes while it is read is refused, not silently mixed: ``total`` differs
  between pages, the ``_id`` sequence is not strictly increasing across pages (rows inserted or
  deleted before the cursor), a page comes back empty before ``total`` rows were read, or more
  rows arrive than ``total``. Nothing is committed; run the load again.
* ``_id`` and ``_full_text`` (CKAN's own fields) are dropped; other undeclared fields are refused.
* Lineage: URL, resource id, pages, total, and the SHA-256 of the records as received.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from .base import Rejects, SourceStream, check_bad_rows, options_from, positive_int
from .convert import RowCheck, declared_batch, python_rows_converter
from .errors import ConfigError, SourceError
from .jsonl import parse_object, records_to_columns
from .registry import register_source
from .schema import ColumnSpec, arrow_schema

_CKAN_FIELDS = frozenset({"_id", "_full_text"})


@dataclass(frozen=True)
class HttpOptions:
    page_size: int = 1000
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 0.5
    max_page_bytes: int = 64 << 20
    max_field_bytes: int = 1 << 20
    assume_timezone: str | None = None

    def __post_init__(self) -> None:
        positive_int("page_size", self.page_size)
        positive_int("max_page_bytes", self.max_page_bytes)
        if not isinstance(self.retries, int) or not 0 <= self.retries <= 10:
            raise ConfigError("option retries must be an integer from 0 to 10")
        for name in ("timeout_s", "backoff_s"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0 or (name == "timeout_s" and v == 0):
                raise ConfigError(f"option {name} must be a positive number of seconds")


def _target(target: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(target, Mapping) or not isinstance(target.get("url"), str):
        raise ConfigError("an http source needs url: (and usually resource_id:)")
    unknown = sorted(set(target) - {"url", "resource_id", "params"})
    if unknown:
        raise ConfigError(f"http source: unknown key(s) {unknown}; known: ['params', 'resource_id', 'url']")
    url = target["url"]
    if not url.startswith(("http://", "https://")):
        raise ConfigError("http source: url must start with http:// or https://")
    params = dict(target.get("params") or {})
    if target.get("resource_id") is not None:
        params["resource_id"] = str(target["resource_id"])
    if {"offset", "limit"} & set(params):
        raise ConfigError("http source: offset and limit are set by the connector (paging)")
    return url, params


class HttpSource:
    kind: ClassVar[str] = "http"

    def open(self, target: Mapping[str, Any], specs: Sequence[ColumnSpec], options: Mapping[str, Any] | None = None,
             *, bad_rows: str = "fail",
             row_check: RowCheck | None = None) -> SourceStream:
        import httpx

        opts: HttpOptions = options_from(HttpOptions, options, "http")
        check_bad_rows(bad_rows)
        schema = arrow_schema(specs)
        url, params = _target(target)
        client = httpx.Client(timeout=opts.timeout_s, follow_redirects=False)
        rejects = Rejects()
        state: dict[str, Any] = {"pages": 0, "total": None, "records_sha256": None}
        lineage = {"url": url, "resource_id": params.get("resource_id"), "params": params, "paging": state}
        batches = self._batches(client, url, params, specs, schema, opts, bad_rows, rejects, row_check, state)
        return SourceStream(self.kind, schema, batches, options=opts, lineage=lineage, rejects=rejects,
                            closer=client.close)

    def _get(self, client: Any, url: str, params: dict[str, Any], opts: HttpOptions, offset: int) -> dict[str, Any]:
        import httpx

        attempt = 0
        while True:
            why = None
            try:
                r = client.get(url, params=params)
                if r.status_code >= 500:
                    why = f"HTTP {r.status_code}"
                elif r.status_code >= 400:
                    raise SourceError(f"the source answered HTTP {r.status_code} at offset {offset}", check="source")
                else:
                    body = r.content
                    if len(body) > opts.max_page_bytes:
                        raise SourceError(f"a page is larger than {opts.max_page_bytes} bytes", check="field_size")
                    return parse_object(body, f"the page at offset {offset}")
            except httpx.TimeoutException:
                why = "timed out"
            except httpx.TransportError as exc:
                why = f"connection failed ({type(exc).__name__})"
            attempt += 1
            if attempt > opts.retries:
                raise SourceError(f"the source failed at offset {offset}: {why} (after {opts.retries} retries)",
                                  check="source")
            time.sleep(opts.backoff_s * (2 ** (attempt - 1)))

    def _batches(self, client: Any, url: str, params: dict[str, Any], specs: Sequence[ColumnSpec], schema: pa.Schema,
                 opts: HttpOptions, bad_rows: str, rejects: Rejects, row_check: RowCheck | None, state: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        digest = hashlib.sha256()
        offset = 0
        total: int | None = None
        last_id: Any = None
        first_id: Any = None
        while True:
            page = self._get(client, url, {**params, "offset": offset, "limit": opts.page_size}, opts, offset)
            result = page.get("result")
            if page.get("success") is not True or not isinstance(result, Mapping):
                raise SourceError(f"the source answered without success at offset {offset}", check="source")
            records, page_total = result.get("records"), result.get("total")
            if not isinstance(records, list) or not isinstance(page_total, int) or isinstance(page_total, bool):
                raise SourceError("the answer lacks result.records or result.total (not a datastore_search shape)",
                                  check="format")
            if total is None:
                total = page_total
                state["total"] = total
            elif page_total != total:
                raise SourceError(f"the source changed while it was read: total was {total}, now {page_total} "
                                  f"(at offset {offset}); nothing was committed, load it again", check="changed")
            if not records:
                if offset < total:
                    raise SourceError(f"the source changed while it was read: an empty page at offset {offset} "
                                      f"of {total}; nothing was committed, load it again", check="changed")
                break
            if offset + len(records) > total:
                raise SourceError(f"the source changed while it was read: more than {total} records", check="changed")
            for i, rec in enumerate(records):
                if not isinstance(rec, Mapping):
                    raise SourceError(f"record {offset + i + 1} is not an object", row=offset + i + 1, check="format")
                rid = rec.get("_id")
                if rid is not None:
                    if last_id is not None and not rid > last_id:
                        raise SourceError(f"the source changed while it was read: _id {rid!r} after {last_id!r} "
                                          f"(record {offset + i + 1}); nothing was committed, load it again",
                                          check="changed")
                    last_id = rid
                if offset + i == 0:
                    first_id = rid
            digest.update(json.dumps(records, sort_keys=True, ensure_ascii=False, default=str).encode())
            state["pages"] += 1
            cols = records_to_columns(records, specs, first_row=offset + 1, ignore=_CKAN_FIELDS)
            conv = python_rows_converter(cols, specs, row_offset=offset, max_field_bytes=opts.max_field_bytes,
                                         assume_timezone=opts.assume_timezone)
            batch = declared_batch(len(records), conv, schema, row_offset=offset, bad_rows=bad_rows, rejects=rejects,
                                   check=row_check)
            offset += len(records)
            yield batch
            if offset >= total:
                break
        # One more look at the first page: a source rewritten behind the cursor shows it here.
        again = self._get(client, url, {**params, "offset": 0, "limit": 1}, opts, 0).get("result") or {}
        first = (again.get("records") or [{}])[0]
        if again.get("total") != total or (isinstance(first, Mapping) and first.get("_id") != first_id):
            raise SourceError("the source changed while it was read (its first page or total differ at the end); "
                              "nothing was committed, load it again", check="changed")
        state["records_sha256"] = digest.hexdigest()


register_source("http", HttpSource)
