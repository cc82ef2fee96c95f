"""A flood of bad tokens: counted per source, one audit record per window, 429 past the limit —
never one locked audit insert per bad request. And /ui/login is rate-limited."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from serving import serving
from sqlalchemy import func, select

from sandbox.access import throttle
from sandbox.access.throttle import MAX_SOURCES, Attempts, AuthFailures, client_source
from sandbox.catalog.db import AuditRecord
from sandbox.interfaces.api.app import create_app
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _count(wh, action: str | None = None) -> int:
    with wh.db.read() as s:
        q = select(func.count()).select_from(AuditRecord)
        return s.execute(q.where(AuditRecord.action == action) if action else q).scalar_one()


@pytest.fixture
def flood_wh(tmp_path, catalog_url):
    wh = Warehouse.open(Settings(home=tmp_path / "wh", database_url=catalog_url, run_worker=False,
                                 auth_failures_per_window=50))
    wh.users.bootstrap_admin()
    yield wh
    wh.close()


def test_a_flood_of_bad_tokens_writes_one_record_and_takes_no_audit_lock(flood_wh, monkeypatch):
    wh = flood_wh
    good = wh.users.issue_token(wh.users.principal("admin"), "admin")
    app = create_app(warehouse=wh)
    appends: list[str] = []
    real = wh.audit.append
    monkeypatch.setattr(wh.audit, "append", lambda s, actor, action, *a, **k: (appends.append(action),
                                                                                real(s, actor, action, *a, **k))[1])
    before = _count(wh)
    statuses = []
    with serving(app) as url, httpx.Client(base_url=url) as http:
        def bad(k: int) -> None:
            for i in range(100):
                statuses.append(http.get("/v1/me", headers={"Authorization": f"Bearer twh_forged_{k}_{i}"})
                                .status_code)
        threads = [threading.Thread(target=bad, args=(k,)) for k in range(5)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        flood_s = time.monotonic() - started
        assert "token.rejected" not in appends and _count(wh) == before  # nothing written per request
        # past the limit the source is answered 429 — but a good token still works from it
        assert statuses.count(401) == 50 and statuses.count(429) == 450
        r = http.get("/v1/me", headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 200
        r = http.get("/v1/me", headers={"Authorization": "Bearer twh_one_more"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    # the service stopped: the open window is recorded, once, with the count
    (rec,) = wh.audit_records(wh.users.principal("admin"), action="token.rejected")
    d = rec["details"]
    assert rec["object_id"] == "127.0.0.1" and d["count"] == 501 and d["rate_limited"] == 451
    assert len(d["fingerprints"]) == 5 and d["paths"] == ["GET /v1/me"]
    print(f"500 bad tokens in {flood_s:.2f} s; audit records added for them: 1")


def test_one_record_per_source_per_window_and_sources_are_bounded(wh, monkeypatch):
    clock = Clock()
    failures = AuthFailures(wh.ctx, window_s=60, limit=3, clock=clock)
    for _ in range(5):
        failures.failed("10.0.0.1", "fp", {"method": "GET", "path": "/v1/me"})
    failures.failed("10.0.0.2", "fp", {})
    assert failures.flush() == 0 and _count(wh, "token.rejected") == 0  # windows still open
    clock.now += 61
    assert failures.failed("10.0.0.1", "fp2", {}) is False  # a new window: the old one is recorded
    assert _count(wh, "token.rejected") == 1
    assert failures.flush() == 1 and _count(wh, "token.rejected") == 2  # 10.0.0.2's ended window
    assert failures.flush(force=True) == 1
    with wh.db.read() as s:
        counts = [(r.object_id, r.details["count"], r.details["rate_limited"]) for r in s.execute(
            select(AuditRecord).where(AuditRecord.action == "token.rejected").order_by(AuditRecord.seq)).scalars()]
    assert counts == [("10.0.0.1", 5, 2), ("10.0.0.2", 1, 0), ("10.0.0.1", 1, 0)]

    assert MAX_SOURCES == 10_000
    monkeypatch.setattr(throttle, "MAX_SOURCES", 40)  # the same rule, at a size a test can write
    many = AuthFailures(wh.ctx, window_s=60, limit=10**6, clock=clock)
    for i in range(540):
        many.failed(f"s{i}", "fp", {})
    assert many.flush(force=True) == 41  # the extra sources share the "*" bucket
    with wh.db.read() as s:
        star = s.execute(select(AuditRecord).where(AuditRecord.object_id == "*")).scalar_one()
    assert star.details["count"] == 500


def test_the_client_behind_a_trusted_proxy_is_the_proxys_last_entry():
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.9"}
    assert client_source(headers, "10.0.0.5", trusted_proxy=True) == "203.0.113.9"
    assert client_source(headers, "10.0.0.5", trusted_proxy=False) == "10.0.0.5"  # never trust it otherwise
    assert client_source({}, None, trusted_proxy=True) == "unknown"


def test_sign_in_is_rate_limited_per_source(tmp_path, catalog_url):
    wh = Warehouse.open(Settings(home=tmp_path / "wh", database_url=catalog_url, run_worker=False,
                                 login_attempts_per_window=3))
    _, good = wh.users.bootstrap_admin()
    app = create_app(warehouse=wh)
    app.state.login_attempts = Attempts(60, 3, clock := Clock())
    c = TestClient(app)

    def attempt(token: str):
        nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/ui/login").text).group(1)
        return c.post("/ui/login", data={"token": token, "nonce": nonce}, follow_redirects=False)
    assert [attempt(f"twh_guess_{i}").status_code for i in range(3)] == [401, 401, 401]
    r = attempt(good)  # even the right token waits: the source is past its limit
    assert r.status_code == 429 and "too many failed sign-ins" in r.text
    assert _count(wh, "token.used") == 0
    clock.now += 61
    assert attempt(good).status_code == 303
    app.state.auth_failures.flush(force=True)
    (rec,) = wh.audit_records(wh.users.principal("admin"), action="token.rejected")
    assert rec["details"]["count"] == 3 and rec["details"]["paths"] == ["POST /ui/login"]
    wh.close()
