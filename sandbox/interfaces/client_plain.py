"""Plain-HTTP requests of :class:`sandbox.interfaces.client.Client` without importing httpx.

``twh --url http://... job submit`` spends more on ``import httpx`` (its models, auth, cookies,
``urllib.request``, ``email``, ``ssl``: ~40 ms here) than on the request itself. A request with
a JSON body or query parameters to an ``http://`` service that no proxy stands in front of is
sent here over one socket (:func:`http11`; the standard library's ``http.client`` would import the
``email`` package for its headers, ~15 ms more of a short command); what it puts on the wire is what
httpx with :class:`sandbox.interfaces.client_transport.PlainHTTPTransport` puts there (the same
method, path, query encoding, JSON encoding, ``Authorization``, one connection per request with
``Connection: close``), and its failures (refused, timed out, a broken answer) come back as
:class:`Unreachable`, which the client reports exactly as it reports httpx's errors. Everything
else — ``https://``, any proxy variable in the environment, file uploads, streams — stays with
httpx (``tests/interfaces/test_client_transport.py`` runs the same requests both ways).
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote, urlencode, urlsplit

TYPE_CHECKING = False  # typing costs a few ms of every quick `twh` command
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PlainResponse", "PlainSession", "Unreachable", "http11", "plain_session_for"]

#: what a path may hold unescaped (RFC 3986 pchar and "/"; "%" keeps an escape already made)
_PATH_SAFE = "/!$&'()*+,;=:@-._~%"


class Unreachable(Exception):
    """No usable answer: the connection was refused or broke, or the service did not answer in time."""


def plain_session_for(url: str, *, timeout: float, headers: dict[str, str]) -> PlainSession | None:
    """A session for ``url`` when it is plain HTTP and no proxy can apply, else ``None`` (httpx)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return None
    if sys.platform in ("darwin", "win32"):  # proxies come from the system's settings there too
        return None
    if any(k.lower().endswith("_proxy") and k.lower() != "no_proxy" for k in os.environ):
        return None  # httpx (and urllib's rules) decide whether the proxy applies
    try:
        port = parts.port or 80
    except ValueError:
        return None  # a port that is not a number: httpx says what is wrong
    return PlainSession(parts.hostname, port, parts.path.rstrip("/"), timeout=timeout, headers=headers)


def _primitive(value: Any) -> str:
    """A query value as httpx writes it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


class PlainResponse:
    """The part of ``httpx.Response`` the client reads: status, headers, body, ``json()``, ``text``."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


class PlainSession:
    """HTTP/1.1 to one service over ``http.client``, one connection per request."""

    def __init__(self, host: str, port: int, prefix: str, *, timeout: float, headers: dict[str, str]) -> None:
        self.host, self.port, self.prefix, self.timeout = host, port, prefix, timeout
        self.headers = {"Accept": "*/*", **headers}

    def close(self) -> None:
        pass  # nothing is kept open between requests

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None) -> PlainResponse:
        target = quote(self.prefix + path, safe=_PATH_SAFE)
        if params:
            query = [(k, _primitive(x)) for k, v in params.items()
                     for x in (v if isinstance(v, (list, tuple)) else [v])]
            target += ("&" if "?" in target else "?") + urlencode(query)
        headers = dict(self.headers)
        body = None
        if json is not None:
            import json as json_

            body = json_.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if body is not None or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body or b""))
        headers["Connection"] = "close"
        try:
            conn = _connect((self.host, self.port), self.timeout)
        except OSError as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        name = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal goes in brackets
        host = name if self.port == 80 else f"{name}:{self.port}"
        try:
            status, pairs, data = http11(conn, method, target, host, headers, body or b"")
        except (OSError, ValueError) as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        finally:
            conn.close()
        found: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            found[key] = f"{found[key]}, {value}" if key in found else value
        return PlainResponse(status, found, _decoded(data, found.get("content-encoding", "")))


def http11(conn: Any, method: str, target: str, host: str, headers: dict[str, str],
           body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """One HTTP/1.1 request on the connected socket ``conn`` and its answer: status, header pairs,
    body. The body is read as the answer frames it (Content-Length, chunks, or to the end of the
    stream), informational answers (1xx) are skipped, and an answer cut short or not HTTP is an
    ``OSError``. Header names and values are Latin-1, as HTTP has them; a CR or LF in a value
    cannot start another header (``ValueError``)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if any(c in f"{name}{value}" for c in "\r\n\x00"):
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    reader = _Reader(conn)
    while True:
        head = reader.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = head[0].split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].isdigit():
            raise OSError("the answer is not HTTP/1.x")
        code = int(status[1])
        pairs = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in head[1:]) if k.strip()]
        if not 100 <= code < 200:
            break
    named = {k.lower(): v for k, v in pairs}
    if method == "HEAD" or code in (204, 304):
        return code, pairs, b""
    if "chunked" in named.get("transfer-encoding", "").lower():
        out = []
        while True:
            size = int(reader.until(b"\r\n").split(b";")[0].strip(), 16)
            if size == 0:
                while reader.until(b"\r\n"):  # trailers, up to the empty line
                    pass
                return code, pairs, b"".join(out)
            out.append(reader.exactly(size))
            reader.until(b"\r\n")
    if "content-length" in named:
        return code, pairs, reader.exactly(int(named["content-length"]))
    return code, pairs, reader.rest()


class _Reader:
    """Buffered reads off a socket: up to a delimiter, an exact size, or the end of the stream."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.buf = conn, b""

    def _more(self) -> bool:
        chunk = self.conn.recv(1 << 16)
        self.buf += chunk
        return bool(chunk)

    def until(self, delimiter: bytes) -> bytes:
        while (at := self.buf.find(delimiter)) < 0:
            if not self._more():
                raise OSError("the answer was cut short")
        found, self.buf = self.buf[:at], self.buf[at + len(delimiter):]
        return found

    def exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            if not self._more():
                raise OSError("the answer was cut short")
        found, self.buf = self.buf[:size], self.buf[size:]
        return found

    def rest(self) -> bytes:
        while self._more():
            pass
        found, self.buf = self.buf, b""
        return found


def _connect(address: tuple[str, int], *args: Any) -> Any:
    """``socket.create_connection`` with an ASCII host name as bytes: for a ``str`` the resolver
    loads the IDNA codec first (~4 ms), and an ASCII name is the same bytes either way."""
    import socket

    host, port = address
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    return socket.create_connection((name, port), *args)


def _decoded(data: bytes, encoding: str) -> bytes:
    """The body without its Content-Encoding (none is asked for; a service may send gzip anyway)."""
    if not encoding:
        return data
    import zlib

    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        try:
            if coding in ("gzip", "x-gzip"):
                data = zlib.decompress(data, zlib.MAX_WBITS | 16)
            elif coding == "deflate":
                try:
                    data = zlib.decompress(data)
                except zlib.error:
                    data = zlib.decompress(data, -zlib.MAX_WBITS)
            elif coding != "identity":
                raise Unreachable(f"the answer's Content-Encoding {coding!r} cannot be decoded")
        except zlib.error as exc:
            raise Unreachable(f"the answer's {coding} body does not decode: {exc}") from exc
    return data
