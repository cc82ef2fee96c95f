"""Supervisor-side threads of a run: the broker conversation and the capped output pipes.

Wire format, both ways: a 4-byte big-endian length, then that many bytes of UTF-8 JSON holding
one object; at most :data:`MAX_FRAME` bytes. The job speaks first; every request gets exactly one
response. A frame that is too large or malformed ends the conversation (the job is hostile, so
we do not try to resynchronise) and is recorded in :attr:`Broker.problem`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import IO, Any

log = logging.getLogger(__name__)

MAX_FRAME = 4 * 1024 * 1024
_HEADER = struct.Struct(">I")
_INTERNAL_ERROR = {"ok": False, "error": {"code": "internal_error", "message": "the broker failed"}}
_TOO_LARGE = {"ok": False, "error": {"code": "response_too_large",
                                     "message": f"the answer is larger than {MAX_FRAME} bytes"}}


class _ProtocolError(Exception):
    """The job broke the wire format; the message is safe to show (no frame content)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def encode_frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


class Broker(threading.Thread):
    """Answers the job's requests with ``handler`` until the job closes its end."""

    def __init__(self, sock: socket.socket, handler: Callable[[dict], dict]) -> None:
        super().__init__(name="twh-broker", daemon=True)
        self._sock = sock
        self._handler = handler
        self.requests = 0
        self.problem: str | None = None

    def stop(self) -> None:
        """Unblock the thread once the sandbox is dead (the handler may still be running)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self) -> None:
        try:
            while (request := self._read_request()) is not None:
                self.requests += 1
                self._sock.sendall(self._answer(request))
        except _ProtocolError as exc:
            self.problem = str(exc)
        except OSError:
            pass  # the job went away mid-conversation: nothing to answer
        finally:
            self._sock.close()

    def _read_exact(self, n: int, *, at_boundary: bool = False) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                if at_boundary and not buf:
                    return None
                raise _ProtocolError("the job closed the connection in the middle of a frame")
            buf += chunk
        return bytes(buf)

    def _read_request(self) -> dict[str, Any] | None:
        header = self._read_exact(_HEADER.size, at_boundary=True)
        if header is None:
            return None
        (length,) = _HEADER.unpack(header)
        if length > MAX_FRAME:
            raise _ProtocolError(f"request frame of {length} bytes exceeds {MAX_FRAME}")
        body = self._read_exact(length)
        assert body is not None
        try:
            request = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _ProtocolError(f"malformed request frame ({type(exc).__name__})") from None
        if not isinstance(request, dict):
            raise _ProtocolError("request frame is not a JSON object")
        return request

    def _answer(self, request: dict[str, Any]) -> bytes:
        try:
            response = self._handler(request)
            if not isinstance(response, dict):
                raise TypeError("handler returned a non-dict")
            frame = encode_frame(response)
        except Exception as exc:  # noqa: BLE001 - the job must never see internal details
            # Type only: exception messages may quote values from the data.
            log.error("broker handler failed: %s", type(exc).__name__)
            return encode_frame(_INTERNAL_ERROR)
        if len(frame) - _HEADER.size > MAX_FRAME:
            return encode_frame(_TOO_LARGE)
        return frame


class CappedReader(threading.Thread):
    """Drains a pipe to EOF, keeping the first ``cap`` bytes and counting the rest.

    Draining (rather than stopping) matters: a full pipe would block the job, and a job
    flooding stdout must not be able to stall the supervisor or grow its memory.
    """

    def __init__(self, pipe: IO[bytes], cap: int) -> None:
        super().__init__(name="twh-pipe", daemon=True)
        self._pipe = pipe
        self._cap = cap
        self._buf = bytearray()
        self.dropped = 0

    @property
    def data(self) -> bytes:
        return bytes(self._buf)

    def run(self) -> None:
        fd = self._pipe.fileno()
        try:
            while chunk := os.read(fd, 1 << 16):
                keep = max(0, min(len(chunk), self._cap - len(self._buf)))
                if keep:
                    self._buf += chunk[:keep]
                self.dropped += len(chunk) - keep
        except OSError:
            pass
        finally:
            self._pipe.close()
