"""Talk to the training warehouse from inside a job (stdlib only).

Inside the sandbox this module is importable as ``twh_job``; it reaches the trusted broker over
the socket whose fd is in ``TWH_BROKER_FD``. There is no other way to data: the sandbox has no
network and no warehouse files. Typical job::

    import twh_job

    res = twh_job.query("SELECT region, COUNT(*) AS n FROM sales GROUP BY region")
    res.to_csv("by_region.csv")          # written to /out/by_region.csv
    twh_job.write_json("meta.json", {"groups": len(res.rows), "notes": res.notes})

A refused query raises :class:`BrokerError` with ``code == "query_refused"``. Only ``.csv`` and
``.json`` files directly in ``/out`` leave the sandbox, and only after the output gate.

Outside the sandbox, tests and the mock mode install a transport with :func:`set_transport`.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BrokerError",
    "MAX_FRAME",
    "OUT_DIR",
    "Result",
    "datasets",
    "query",
    "request",
    "set_transport",
    "write_csv",
    "write_json",
]

#: Largest frame either side accepts (bytes of JSON after the 4-byte length).
MAX_FRAME = 4 * 1024 * 1024
#: Where relative output names go; only this folder leaves the sandbox.
OUT_DIR = Path(os.environ.get("TWH_OUT_DIR", "/out"))

Transport = Callable[[dict[str, Any]], dict[str, Any]]

_HEADER = struct.Struct(">I")
_lock = threading.Lock()
_transport: Transport | None = None


class BrokerError(Exception):
    """The broker said no (``code`` e.g. ``query_refused``) or could not be reached."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = dict(details or {})


def set_transport(transport: Transport | None) -> None:
    """Send every request to ``transport(request) -> response`` instead of the broker socket.

    Used by tests and by the ``twh`` CLI's mock mode; ``None`` restores the default.
    """
    global _transport
    with _lock:
        _transport = transport


# -- transport ---------------------------------------------------------------------------------

class _SocketTransport:
    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)

    def _read_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise BrokerError("broker_unavailable", "the broker closed the connection")
            buf += chunk
        return bytes(buf)

    def __call__(self, req: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(req, allow_nan=False, separators=(",", ":")).encode("utf-8")
        if len(body) > MAX_FRAME:
            raise BrokerError("request_too_large", f"a request may be at most {MAX_FRAME} bytes")
        try:
            self._sock.sendall(_HEADER.pack(len(body)) + body)
            (length,) = _HEADER.unpack(self._read_exact(_HEADER.size))
            if length > MAX_FRAME:
                raise BrokerError("protocol_error", "the broker sent an oversized frame")
            answer = json.loads(self._read_exact(length).decode("utf-8"))
        except OSError as exc:
            raise BrokerError("broker_unavailable", f"cannot reach the broker ({exc.strerror})") from None
        if not isinstance(answer, dict):
            raise BrokerError("protocol_error", "the broker sent something that is not an object")
        return answer


def _default_transport() -> Transport:
    fd = os.environ.get("TWH_BROKER_FD")
    if fd is not None and fd.isdigit():
        return _SocketTransport(int(fd))
    if os.environ.get("TWH_MOCK_DIR"):
        raise BrokerError("no_broker", "TWH_MOCK_DIR is set, but mock mode is provided by the `twh` CLI "
                                       "(it installs a transport with twh_job.set_transport); "
                                       "run the job through the CLI")
    raise BrokerError("no_broker", "not running inside the training warehouse sandbox (TWH_BROKER_FD is not set)")


def request(req: dict[str, Any]) -> dict[str, Any]:
    """Send one raw request and return the broker's ``ok`` response, or raise :class:`BrokerError`."""
    global _transport
    with _lock:  # one conversation: frames of two threads must not interleave
        if _transport is None:
            _transport = _default_transport()
        answer = _transport(req)
    if answer.get("ok") is True:
        return answer
    error = answer.get("error")
    if not isinstance(error, dict):
        raise BrokerError("protocol_error", "the broker answered without 'ok' or 'error'")
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    raise BrokerError(str(error.get("code", "error")), str(error.get("message", "")), details)


# -- results and outputs -----------------------------------------------------------------------

def _out_path(path_or_name: str | os.PathLike[str]) -> Path:
    path = Path(path_or_name)
    return path if path.is_absolute() else OUT_DIR / path


@dataclass
class Result:
    """The answer to one query: gated rows plus what the gate did to them."""

    columns: list[str]
    rows: list[list[Any]]
    #: how many cells were suppressed: None on real data (withheld: it could carry the values the
    #: cells hide); a number on mock data (``twh job run-local``)
    suppressed: int | None = None
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_response(cls, answer: dict[str, Any]) -> Result:
        return cls(
            columns=[str(c) for c in answer.get("columns", [])],
            rows=[list(r) for r in answer.get("rows", [])],
            suppressed=None if answer.get("suppressed") is None else int(answer["suppressed"]),
            notes=[str(n) for n in answer.get("notes", [])],
            raw=answer,
        )

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=False)) for row in self.rows]

    def to_csv(self, path_or_name: str | os.PathLike[str]) -> Path:
        """Write the rows with a header; a relative name is written under ``/out``."""
        return write_csv(path_or_name, self.columns, self.rows)


def query(sql: str) -> Result:
    """Run ``sql`` through the broker's gate; raises :class:`BrokerError` if refused."""
    if not isinstance(sql, str):
        raise TypeError("sql must be a string")
    return Result.from_response(request({"op": "query", "sql": sql}))


def datasets() -> list[dict[str, Any]]:
    """The datasets this job may query, with their columns."""
    return list(request({"op": "datasets"}).get("datasets", []))


def write_csv(path_or_name: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    path = _out_path(path_or_name)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        writer.writerows(rows)
    return path


def write_json(path_or_name: str | os.PathLike[str], obj: Any) -> Path:
    """Write strict JSON (NaN and infinities are refused, as the output gate would)."""
    path = _out_path(path_or_name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, allow_nan=False, ensure_ascii=False, indent=2)
    return path
