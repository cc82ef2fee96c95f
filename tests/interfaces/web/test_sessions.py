"""Web sessions live in the catalog: two service processes (two apps, two warehouses on one home)
honour each other's sessions, sign-outs, expiry and token revocations."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from sandbox.catalog.db import WebSessionRow, utcnow
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.web.sessions import COOKIE, IDLE_SECONDS, SessionStore
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse

from .conftest import csrf_of, login


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two "processes": separate Warehouse objects (engines, session stores) on one warehouse home."""
    home = tmp_path_factory.mktemp("sessions") / "wh"
    one = Warehouse.open(Settings(home=home, run_worker=False))
    one.users.bootstrap_admin()
    _, token = one.users.add(one.users.principal("admin"), "steward_s", "steward", "tax")
    two = Warehouse.open(Settings(home=home, run_worker=False))
    yield one, two, token
    one.close()
    two.close()


def _client(wh: Warehouse) -> TestClient:
    return TestClient(create_app(warehouse=wh), base_url="http://testserver")


def _signed_in(wh: Warehouse, token: str) -> tuple[TestClient, str]:
    c = _client(wh)
    assert login(c, token).status_code == 303
    return c, c.cookies[COOKIE]


def _signed_in_elsewhere(wh: Warehouse, cookie: str) -> TestClient:
    c = _client(wh)
    c.cookies.set(COOKIE, cookie)
    return c


def _page_status(c: TestClient) -> int | str:
    r = c.get("/ui/datasets", follow_redirects=False)
    return r.headers["location"].split("?")[0] if r.status_code == 303 else r.status_code


def test_a_session_from_one_process_is_honoured_by_another_and_the_catalog_keeps_no_secret(pair):
    one, two, token = pair
    _, cookie = _signed_in(one, token)
    assert _page_status(_signed_in_elsewhere(two, cookie)) == 200
    sid = cookie.split(".")[0]
    with two.db.read() as s:
        rows = s.execute(select(WebSessionRow)).scalars().all()
    stored = " ".join(str(v) for r in rows for v in vars(r).values())
    assert sid not in stored and token not in stored  # only hashes and the token's row id


def test_signing_out_in_one_process_ends_the_session_in_the_other(pair):
    one, two, token = pair
    a, cookie = _signed_in(one, token)
    b = _signed_in_elsewhere(two, cookie)
    csrf = csrf_of(b.get("/ui/datasets").text)  # the CSRF token is the session's, from the catalog
    assert b.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert _page_status(a) == "/ui/login"
    assert _page_status(_signed_in_elsewhere(two, cookie)) == "/ui/login"
    with one.db.read() as s:
        assert s.execute(select(WebSessionRow.revoked_at)).scalars().all()[-1] is not None


@pytest.mark.parametrize("column,age", [("expires_at", timedelta(seconds=1)),
                                        ("last_seen_at", timedelta(seconds=IDLE_SECONDS + 1))])
def test_an_expired_or_idle_session_is_refused_everywhere(pair, column, age):
    one, two, token = pair
    a, cookie = _signed_in(one, token)
    assert _page_status(a) == 200
    with one.db.transaction() as s:  # the clock moves on: absolute expiry, or idle too long
        row = s.execute(select(WebSessionRow).order_by(WebSessionRow.created_at.desc())).scalars().first()
        value = utcnow() - age
        s.execute(update(WebSessionRow).where(WebSessionRow.id_hash == row.id_hash).values({column: value}))
    assert _page_status(a) == "/ui/login"
    assert _page_status(_signed_in_elsewhere(two, cookie)) == "/ui/login"


def test_a_session_expires_on_the_injected_clock(pair):
    one, _two, token = pair
    now = [utcnow()]
    store = SessionStore(one.db, one.settings.secrets_dir, clock=lambda: now[0])
    s = store.create(token)
    cookie = store.cookie_value(s)
    assert store.get(cookie).principal.name == "steward_s"
    now[0] += timedelta(seconds=IDLE_SECONDS - 5)
    assert store.get(cookie) is not None  # still within the idle limit (and touched now)
    now[0] += timedelta(seconds=IDLE_SECONDS - 5)
    assert store.get(cookie) is not None  # touched: the idle clock restarted
    now[0] += timedelta(hours=13)
    assert store.get(cookie) is None  # past the absolute limit, however active
    assert store.get(cookie.replace(".", "x.", 1)) is None  # a bad signature is no session


def test_revoking_the_token_in_one_process_ends_its_session_in_the_other(pair):
    one, two, _ = pair
    admin = one.users.principal("admin")
    token = one.users.issue_token(admin, "steward_s")
    _, cookie = _signed_in(one, token)
    b = _signed_in_elsewhere(two, cookie)
    assert _page_status(b) == 200
    one.users.revoke_tokens(admin, "steward_s")
    assert _page_status(b) == "/ui/login"
    actions = [r["action"] for r in two.audit_search(admin, _all(), offset=0, limit=1000)[0]]
    assert "token.rejected" in actions
    with two.db.read() as s:  # and the session row itself is ended, not just refused this once
        row = s.get(WebSessionRow, hashlib.sha256(cookie.split(".")[0].encode()).hexdigest())
        assert row.revoked_at is not None


def _all():
    from sandbox.audit.search import AuditFilter

    return AuditFilter.of(action="token.*")
