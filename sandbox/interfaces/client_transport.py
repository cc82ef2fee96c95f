"""How :class:`sandbox.interfaces.client.Client` reaches a plain-HTTP service: an httpx transport
over the standard library's ``http.client``.

httpx stays the client (requests, responses, errors, timeouts, redirects are httpx's); only the
last step, the bytes on the socket, is done here when the service's URL is ``http://`` and no
proxy applies. Why: httpx's own transport imports httpcore and h11 and builds a TLS context
that loads the whole CA bundle (~60 ms together, more than everything else a short ``twh``
command does), although a plain-HTTP request needs neither; ``http.client`` is loaded by
``import httpx`` already. ``https://`` URLs and proxies keep httpx's default transport. :class:`UnixHTTPTransport` speaks the
same HTTP over a Unix socket (the per-home local server of :mod:`sandbox.interfaces.cli.local_server`).

Each request opens its own connection and closes it (``Connection: close``): a retried POST can
never submit a job twice because a kept-alive connection went stale, and on the loopback or a
LAN a connect costs far less than a request.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.request
from typing import Any

import httpx

__all__ = ["PlainHTTPTransport", "UnixHTTPTransport", "plain_transport_for", "unix_address"]


def plain_transport_for(url: str) -> PlainHTTPTransport | None:
    """The light transport for ``url``, or ``None`` (httpx's default) for TLS or a proxied URL."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http" or not parsed.host:
        return None
    proxies = urllib.request.getproxies()  # what httpx's trust_env would use (HTTP_PROXY, ALL_PROXY, ...)
    if (proxies.get("http") or proxies.get("all")) and not urllib.request.proxy_bypass(parsed.host):
        return None
    return PlainHTTPTransport()


def _timeout(request: httpx.Request, kind: str) -> float | None:
    return (request.extensions.get("timeout") or {}).get(kind)


class PlainHTTPTransport(httpx.BaseTransport):
    """HTTP/1.1 over ``http.client``, one connection per request. Socket and protocol failures
    come back as httpx's exceptions (``ConnectError``, ``ReadTimeout``, ...), like httpx's own
    transport, so callers handle ``httpx.HTTPError`` alone."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"this transport speaks plain HTTP only, not {url.scheme!r}",
                                            request=request)
        conn = self._connection(url.host, url.port or 80, _timeout(request, "connect"))
        try:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(str(exc), request=request) from exc
            except OSError as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
            conn.sock.settimeout(_timeout(request, "read"))
            return self._exchange(conn, request)
        finally:
            conn.close()

    def _connection(self, host: str, port: int, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _exchange(self, conn: http.client.HTTPConnection, request: httpx.Request) -> httpx.Response:
        try:
            conn.putrequest(request.method, request.url.raw_path.decode("ascii"), skip_host=True,
                            skip_accept_encoding=True)
            chunked = False
            for name, value in request.headers.raw:
                if name.lower() == b"connection":
                    continue
                chunked |= name.lower() == b"transfer-encoding" and value.lower() == b"chunked"
                conn.putheader(name, value)
            conn.putheader(b"Connection", b"close")
            conn.endheaders()
            for chunk in request.stream:  # type: ignore[union-attr]  # a sync request's stream
                if chunked:
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunk else b"")
                else:
                    conn.send(chunk)
            if chunked:
                conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except (http.client.HTTPException, ValueError) as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1" if resp.version == 11 else b"HTTP/1.0",
                                      "reason_phrase": (resp.reason or "").encode("latin-1", "replace")}
        return httpx.Response(resp.status, headers=resp.getheaders(), stream=httpx.ByteStream(data),
                              extensions=extensions)


def unix_address(path: str | os.PathLike[str], dir_fd: int | None = None) -> str:
    """The address to bind or connect ``path`` by: the path itself, or — past the kernel's ~107
    bytes for a socket's name (a deep home) — the same file named through ``/proc/self/fd`` of an
    open descriptor of its folder (``dir_fd``), which is short."""
    text = os.fspath(path)
    if len(os.fsencode(text)) < 100 or dir_fd is None:
        return text
    return f"/proc/self/fd/{dir_fd}/{os.path.basename(text)}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        folder = None
        try:
            if len(os.fsencode(self._path)) >= 100:
                folder = os.open(os.path.dirname(self._path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            sock.connect(unix_address(self._path, folder))
        except BaseException:
            sock.close()
            raise
        finally:
            if folder is not None:
                os.close(folder)
        self.sock = sock


class UnixHTTPTransport(PlainHTTPTransport):
    """Plain HTTP/1.1 to a server listening on the Unix socket ``path`` (the URL's host and port
    are ignored: the socket is the address). Whoever may connect to the socket is decided by the
    file's mode and by the server's peer-credential check, not by this client."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)

    def _connection(self, host: str, port: int, timeout: float | None) -> http.client.HTTPConnection:
        return _UnixConnection(self._path, timeout)
