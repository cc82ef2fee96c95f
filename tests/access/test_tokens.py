"""Token lifecycle: issue, list, revoke (CLI, API, SDK); expiry by policy on every request; last use;
Secure cookies by configuration, not by the request's scheme."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from serving import serving
from sqlalchemy import select, update
from typer.testing import CliRunner

from sandbox.catalog.db import AuditRecord, Token, utcnow
from sandbox.errors import AuthError, Forbidden, InvalidInput, NotFound
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.cli.main import app as cli
from sandbox.interfaces.client import Client
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse


def _http(wh, token: str | None = None) -> TestClient:
    c = TestClient(create_app(warehouse=wh))
    if token:
        c.headers["Authorization"] = f"Bearer {token}"
    return c


def _age(wh, token_id: int, **columns) -> None:
    with wh.db.transaction() as s:
        s.execute(update(Token).where(Token.id == token_id).values(**columns))


def _login(c: TestClient, token: str):
    nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/ui/login").text).group(1)
    return c.post("/ui/login", data={"token": token, "nonce": nonce}, follow_redirects=False)


def test_issue_list_and_revoke_through_the_cli_locally_and_remotely(wh, people, catalog_url, monkeypatch):
    monkeypatch.setenv("TWH_DATABASE_URL", catalog_url)  # the local CLI opens the same catalog
    home = ["--home", str(wh.settings.home), "--as", "admin", "--json"]
    res = CliRunner().invoke(cli, [*home, "token", "issue", "analyst", "--days", "7", "--label", "ci"])
    assert res.exit_code == 0, res.output
    issued = json.loads(res.stdout)
    assert issued["token"].startswith("twh_") and issued["state"] == "active" and issued["label"] == "ci"
    assert wh.users.authenticate(issued["token"]).name == "analyst"
    listed = json.loads(CliRunner().invoke(cli, [*home, "token", "list", "--user", "analyst"]).stdout)
    assert [t["id"] for t in listed][-1] == issued["id"] and all("token" not in t for t in listed)
    admin_token = wh.users.issue_token(people["admin"], "admin")
    with serving(create_app(warehouse=wh)) as url:  # the CLI's remote mode, through the API
        remote = ["--url", url, "--token", admin_token, "--json"]
        res = CliRunner().invoke(cli, [*remote, "token", "revoke", str(issued["id"])])
        assert res.exit_code == 0, res.output
        assert [t["state"] for t in Client(url, admin_token).list_tokens("analyst") if t["id"] == issued["id"]] \
            == ["revoked"]
    assert json.loads(res.stdout)["state"] == "revoked"
    with pytest.raises(AuthError):
        wh.users.authenticate(issued["token"])
    with wh.db.read() as s:
        actions = [r.action for r in s.execute(select(AuditRecord).where(AuditRecord.object_id == "analyst")).scalars()]
    assert actions[-2:] == ["token.issued", "token.revoked"]


def test_the_api_issues_lists_and_revokes_with_roles(wh, people):
    admin = wh.users.issue_token(people["admin"], "admin")
    mine = wh.users.issue_token(people["admin"], "analyst")
    with _http(wh, admin) as a, _http(wh, mine) as analyst:
        r = a.post("/v1/tokens", json={"user": "rival", "days": 30, "label": "laptop"})
        assert r.status_code == 201 and r.json()["user"] == "rival" and r.json()["token"].startswith("twh_")
        rival = r.json()
        assert a.post("/v1/tokens", json={"user": "rival", "days": 91}).status_code == 422  # past the policy
        assert a.post("/v1/tokens", json={"user": "nobody"}).status_code == 404
        # a stolen token cannot mint its successors; nor see or revoke anyone else's
        r = analyst.post("/v1/tokens", json={"user": "analyst"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        own = analyst.get("/v1/tokens").json()
        assert own["total"] >= 1 and {t["user"] for t in own["items"]} == {"analyst"}
        assert analyst.get("/v1/tokens", params={"user": "rival"}).status_code == 404
        assert analyst.delete(f"/v1/tokens/{rival['id']}").status_code == 404
        assert analyst.delete("/v1/tokens/0").status_code == 422
        assert analyst.delete(f"/v1/tokens/{2**63}").status_code == 422
        everyone = a.get("/v1/tokens", params={"limit": 1000}).json()
        assert {"admin", "analyst", "rival"} <= {t["user"] for t in everyone["items"]}
        assert a.delete(f"/v1/tokens/{rival['id']}").json()["state"] == "revoked"
        with _http(wh, rival["token"]) as gone:
            assert gone.get("/v1/me").status_code == 401


def test_an_expired_token_is_refused_on_every_request_and_ends_web_sessions(wh, people):
    info, token = wh.users.issue(people["admin"], "auditor", days=1)
    with _http(wh, token) as c:
        assert c.get("/v1/me").status_code == 200
    web = _http(wh)
    assert _login(web, token).status_code == 303
    assert web.get("/ui/audit", follow_redirects=False).status_code == 200
    _age(wh, info["id"], expires_at=utcnow() - timedelta(seconds=1))  # a day later
    with _http(wh, token) as c:
        r = c.get("/v1/me")
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert web.get("/ui/audit", follow_redirects=False).status_code == 303  # the session ended with it
    assert _login(_http(wh), token).status_code == 401


def test_the_policy_expires_old_tokens_too(tmp_path, catalog_url):
    wh = Warehouse.open(Settings(home=tmp_path / "wh", database_url=catalog_url, run_worker=False))
    _, token = wh.users.bootstrap_admin()
    (row,) = wh.users.list_tokens(wh.users.principal("admin"))
    assert row["expires_at"][:10] == (utcnow() + timedelta(days=90)).date().isoformat()  # the default policy
    _age(wh, row["id"], created_at=utcnow() - timedelta(days=40), expires_at=None)  # a token from before 0004
    assert wh.users.authenticate(token).name == "admin"
    wh.close()
    tighter = Warehouse.open(Settings(home=tmp_path / "wh", database_url=catalog_url, run_worker=False,
                                      token_ttl_days=30))
    with pytest.raises(AuthError, match="expired"):
        tighter.users.authenticate(token)
    with pytest.raises(InvalidInput):
        tighter.users.issue(tighter.users.principal("admin"), "admin", days=31)
    tighter.close()


def test_last_use_is_written_at_most_once_a_minute(wh, people):
    info, token = wh.users.issue(people["admin"], "analyst")
    writes: list[str] = []
    from sqlalchemy import event

    def count(conn, cursor, statement, *_a):
        if statement.lstrip().upper().startswith("UPDATE TOKENS"):
            writes.append(statement)
    event.listen(wh.db.engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            wh.users.authenticate(token)
    finally:
        event.remove(wh.db.engine, "before_cursor_execute", count)
    assert len(writes) == 1
    first = {t["id"]: t for t in wh.users.list_tokens(people["admin"])}[info["id"]]["last_used_at"]
    assert first is not None
    _age(wh, info["id"], last_used_at=utcnow() - timedelta(minutes=2))
    wh.users.authenticate(token)
    again = {t["id"]: t for t in wh.users.list_tokens(people["admin"])}[info["id"]]["last_used_at"]
    assert again >= first


def test_only_admins_issue_and_others_revoke_only_their_own(wh, people):
    with pytest.raises(Forbidden):
        wh.users.issue(people["analyst"], "analyst")
    info, _ = wh.users.issue(people["admin"], "rival")
    with pytest.raises(NotFound):
        wh.users.revoke_token(people["analyst"], info["id"])
    mine, _ = wh.users.issue(people["admin"], "analyst")
    assert wh.users.revoke_token(people["analyst"], mine["id"])["state"] == "revoked"


@pytest.mark.parametrize("config,secure", [({}, False), ({"public_url": "https://twh.example.org"}, True),
                                           ({"trusted_proxy": True}, True),
                                           ({"public_url": "http://localhost:8000"}, False)])
def test_cookies_are_secure_by_configuration_not_by_the_request_scheme(tmp_path, catalog_url, config, secure):
    """Behind a TLS proxy the service sees plain http: the old rule (request scheme) sent the session
    cookie without Secure. Every request here arrives over http, like one from such a proxy."""
    wh = Warehouse.open(Settings(home=tmp_path / "wh", database_url=catalog_url, run_worker=False, **config))
    _, token = wh.users.bootstrap_admin()
    c = TestClient(create_app(warehouse=wh), base_url="http://testserver")
    login_form = c.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', login_form.text).group(1)
    c.cookies.clear()  # a browser would not send a Secure cookie over http: pass it by hand
    r = c.post("/ui/login", data={"token": token, "nonce": nonce}, headers={"cookie": f"twh_login={nonce}"},
               follow_redirects=False)
    assert r.status_code == 303
    for cookie in (login_form.headers["set-cookie"], r.headers["set-cookie"]):
        assert ("; secure" in cookie.lower()) is secure, cookie
    wh.close()
