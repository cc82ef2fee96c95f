"""The Client's light transport for plain-HTTP services (sandbox/interfaces/client_transport.py):
the same requests, answers and errors as httpx's own transport, over ``http.client``, against a
real server on a socket."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sandbox.errors import NotFound, TwhError
from sandbox.interfaces.client import Client
from sandbox.interfaces.client_transport import PlainHTTPTransport, plain_transport_for


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self) -> None:
        body = self._body()
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/missing"):
            out, status = json.dumps({"error": {"code": "not_found", "message": "no such job", "details": {}}}), 404
            data, extra = out.encode(), {"Content-Type": "application/json"}
        elif self.path.startswith("/gzip"):
            status, data, extra = 200, gzip.compress(b'{"zipped": true}'), {"Content-Type": "application/json",
                                                                             "Content-Encoding": "gzip"}
        else:
            status = 201 if self.command == "POST" else 200
            data = json.dumps({"method": self.command, "path": self.path, "body": body.decode("latin-1"),
                               "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
            extra = {"Content-Type": "application/json"}
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # /slow: the client gave up waiting, as it should
            pass

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_plain_http_gets_the_light_transport_and_tls_or_a_proxy_keeps_httpx_s(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(plain_transport_for("http://127.0.0.1:8000"), PlainHTTPTransport)
    assert plain_transport_for("https://warehouse.example") is None  # TLS: httpx's transport and CA bundle
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert plain_transport_for("http://warehouse.example:8000") is None  # the proxy applies: httpx routes it
    monkeypatch.setenv("NO_PROXY", "warehouse.example")
    assert isinstance(plain_transport_for("http://warehouse.example:8000"), PlainHTTPTransport)


def test_requests_arrive_as_httpx_sends_them(url: str) -> None:
    c = Client(url, "tok-123")
    assert isinstance(c._http._transport, PlainHTTPTransport)
    got = c._call("GET", "/v1/things", params={"a": "x y", "b": 2})
    assert got["method"] == "GET" and got["path"] == "/v1/things?a=x+y&b=2"
    assert got["headers"]["authorization"] == "Bearer tok-123"
    assert got["headers"]["host"] == url.removeprefix("http://")
    assert got["headers"]["connection"] == "close"  # one connection per request: nothing goes stale
    posted = c._call("POST", "/v1/jobs", json={"files": {"job.py": "cGFzcw=="}})
    assert posted["method"] == "POST" and json.loads(posted["body"]) == {"files": {"job.py": "cGFzcw=="}}
    assert c._call("DELETE", "/v1/tokens/3")["method"] == "DELETE"


def test_an_upload_of_a_file_and_a_stream_of_unknown_length(url: str, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    c = Client(url, "t")
    with open(f, "rb") as fh:
        got = c._call("POST", "/upload", files={"file": ("big.bin", fh)}, data={"mode": "append"})
    assert int(got["headers"]["content-length"]) == len(got["body"].encode("latin-1"))
    assert data in got["body"].encode("latin-1") and b'name="mode"' in got["body"].encode("latin-1")

    def parts() -> Iterator[bytes]:
        yield b"first,"
        yield b""
        yield b"second"

    got = c._call("POST", "/chunks", content=parts())
    assert got["headers"]["transfer-encoding"] == "chunked" and got["body"] == "first,second"


def test_answers_errors_and_encodings_are_httpx_s(url: str) -> None:
    c = Client(url, "t")
    with pytest.raises(NotFound, match="no such job"):  # the service's own error, as with httpx's transport
        c._call("GET", "/missing")
    assert c._call("GET", "/gzip") == {"zipped": True}  # Content-Encoding decoded by httpx as usual


def test_an_unreachable_or_silent_service_is_reported_as_unreachable(url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: refused
    with pytest.raises(TwhError, match="cannot reach") as refused:
        Client(f"http://127.0.0.1:{closed}", "t").whoami()
    assert refused.value.details == {"unreachable": True}
    with pytest.raises(TwhError, match="cannot reach") as slow:
        Client(url, "t", timeout=0.2)._call("GET", "/slow")
    assert slow.value.details == {"unreachable": True}


def test_only_plain_http_is_spoken() -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        PlainHTTPTransport().handle_request(httpx.Request("GET", "https://example.invalid/"))


@pytest.mark.parametrize("first, gets", [("awaiting_review", 0), ("queued", 2)])
def test_a_submit_asks_again_only_while_the_job_is_not_done_for_its_viewer(tmp_path: Path, first: str,
                                                                           gets: int) -> None:
    """The submit's own answer is the submitter's view (the same as a GET's): when it is already
    final (``awaiting_review``) no GET follows; otherwise the client polls until it is."""
    (tmp_path / "job.yaml").write_text("name: j\npurpose: credit_risk\ndatasets: [d]\n")
    (tmp_path / "job.py").write_text("pass\n")
    seen: list[str] = []
    states = iter(["running", "released"])

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        state = first if request.method == "POST" else next(states)
        return httpx.Response(201 if request.method == "POST" else 200, json={"id": "job_1", "state": state})

    job = Client("http://svc", "t", transport=httpx.MockTransport(answer)).submit_job(tmp_path)
    assert seen == ["POST"] + ["GET"] * gets
    assert job["state"] == (first if gets == 0 else "released")


def _both(url: str) -> tuple[Client, Client]:
    """The same service through client_plain (no httpx) and through httpx with the light transport."""
    plain, through_httpx = Client(url, "tok-9"), Client(url, "tok-9", transport=PlainHTTPTransport())
    assert plain._plain is not None and through_httpx._plain is None
    return plain, through_httpx


@pytest.mark.parametrize("method, path, kw", [
    ("GET", "/v1/things", {"params": {"a": "x y&z=1", "b": 2, "t": True, "f": False, "n": None, "l": [1, "二"]}}),
    ("GET", "/v1/datasets/a b/ü", {}),
    ("GET", "/v1/x%20y", {"params": {"offset": 0, "limit": 500}}),
    ("POST", "/v1/jobs", {"json": {"files": {"job.py": "cGFzcw=="}, "名": "值", "n": 1.5, "z": None}}),
    ("POST", "/v1/exports/e1/decision", {}),
    ("DELETE", "/v1/tokens/3", {}),
])
def test_a_request_without_httpx_arrives_as_httpx_sends_it(url: str, method: str, path: str,
                                                          kw: dict[str, object]) -> None:
    """client_plain writes the same method, path, query, body and headers as httpx does (its
    User-Agent and Accept-Encoding aside: it asks for no compression), under a base URL's prefix too."""
    for base in (url, url + "/prefix/"):
        plain, through_httpx = _both(base)
        a, b = plain._call(method, path, **kw), through_httpx._call(method, path, **kw)
        for got in (a, b):
            for name in ("user-agent", "accept-encoding"):
                got["headers"].pop(name, None)
        assert a == b
        assert a["headers"]["connection"] == "close" and a["headers"]["authorization"] == "Bearer tok-9"


def test_answers_and_failures_without_httpx_read_as_with_it(url: str) -> None:
    plain, through_httpx = _both(url)
    for c in (plain, through_httpx):
        with pytest.raises(NotFound, match="no such job"):
            c._call("GET", "/missing")
        assert c._call("GET", "/gzip") == {"zipped": True}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    messages = []
    for transport in (None, PlainHTTPTransport()):
        with pytest.raises(TwhError) as refused:
            Client(f"http://127.0.0.1:{closed}", "t", transport=transport).whoami()
        assert refused.value.details == {"unreachable": True}
        messages.append(refused.value.message)
    assert messages[0] == messages[1]  # "cannot reach the warehouse service: [Errno 111] Connection refused"


def test_only_a_plain_unproxied_http_url_skips_httpx(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from sandbox.interfaces.client_plain import plain_session_for

    for var in [k for k in __import__("os").environ if k.lower().endswith("_proxy")]:
        monkeypatch.delenv(var)
    assert plain_session_for("http://127.0.0.1:8000", timeout=1, headers={}) is not None
    assert plain_session_for("https://warehouse.example", timeout=1, headers={}) is None
    assert plain_session_for("http://u:p@warehouse.example", timeout=1, headers={}) is None
    monkeypatch.setenv("no_proxy", "localhost")
    assert plain_session_for("http://127.0.0.1:8000", timeout=1, headers={}) is not None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")  # httpx and urllib decide whether it applies
    assert plain_session_for("http://127.0.0.1:8000", timeout=1, headers={}) is None
    assert Client("http://127.0.0.1:8000", "t")._plain is None
    # an upload goes through httpx even on a plain URL (multipart is httpx's)
    monkeypatch.delenv("HTTP_PROXY")
    c = Client(url, "t")
    assert c._plain is not None and c._client is None
    c._call("POST", "/upload", data={"mode": "append"})
    assert c._client is not None


def test_a_remote_request_imports_no_httpx(url: str) -> None:
    """Nor http.client and its email package (client_plain.http11 speaks HTTP/1.1 on the socket)."""
    import subprocess
    import sys

    code = (f"import sys; from sandbox.interfaces.client import Client; c = Client({url!r}, 't'); "
            "assert c._call('GET', '/v1/me')['path'] == '/v1/me'; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('httpx', 'httpcore', 'h11', 'certifi', 'email') or m == 'http.client'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_http11_reads_each_framing_and_refuses_a_header_that_would_split() -> None:
    """Informational answers skipped, chunks with trailers, a body to the end of the stream, and a
    header value with a line break never sent (it would start a header of its own)."""
    import socket

    from sandbox.interfaces.client_plain import http11

    def answer(raw: bytes, **kw):
        a, b = socket.socketpair()
        with a, b:
            b.sendall(raw)
            b.shutdown(socket.SHUT_WR)
            got = http11(a, "GET", "/x", "h", kw.get("headers", {}), b"")
            return got, b.recv(65536)

    (code, pairs, body), sent = answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nto the end")
    assert (code, pairs, body) == (200, [("X-A", "1")], b"to the end")
    assert sent == b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
    (code, _, body), _ = answer(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"2;ext=1\r\nab\r\n1\r\nc\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert (code, body) == (201, b"abc")
    with pytest.raises(ValueError, match="line break"):
        answer(b"", headers={"X-Twh-Act-As": "analyst\r\nX-Evil: 1"})
