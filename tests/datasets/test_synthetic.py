"""DP synthetic development tables: charged once, refused with reasons, schema-identical, no real keys."""

from __future__ import annotations

import io
import threading
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from connectors.schema import arrow_schema
from dp.budget import Budget, from_text
from sandbox.catalog.db import AuditRecord, BudgetCharge
from sandbox.datasets.declared import column_specs
from sandbox.datasets.manifest import parse_manifest
from sandbox.errors import AccessRefused, BudgetExhausted, Conflict, Forbidden, NotFound, Refused, Tampered
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.client import Client, LocalClient
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse

UNITS, ROWS = 3_000, 15_000


def manifest(name: str = "loans", **dp: Any) -> dict[str, Any]:
    rules = {"max_rows_per_unit": 5, "bounds": {"amount": [0, 500]}, "budget": {"epsilon": 3},
             "epsilon_per_query": 0.5, "public_keys": {"industry": ["C", "F", "G"]},
             "synthetic": {"epsilon": 2, "rows": 4000}, **dp}
    return {"name": name, "provider_kind": "market", "stewards": ["steward"],
            "schema": [{"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
                       {"name": "owner", "type": "string", "role": "identifier"},
                       {"name": "industry", "type": "string", "role": "dimension", "nullable": False},
                       {"name": "district", "type": "string", "role": "dimension"},
                       {"name": "year", "type": "int64", "role": "dimension", "min": 2015, "max": 2024},
                       {"name": "amount", "type": "float64", "role": "measure", "nullable": False},
                       {"name": "opened", "type": "date", "role": "dimension"}],
            "policy": {"tenants": ["bank_a", "bank_b"], "purposes": ["x"], "privacy_unit": "uscc",
                       "release_mode": "dp", "dp": rules}}


def write_data(path: Path, extra_industry: str | None = None) -> pa.Table:
    rng = np.random.default_rng(0)
    industry = rng.choice(["C", "F", "G"], ROWS, p=[0.6, 0.3, 0.1]).astype(object)
    if extra_industry:
        industry[:2] = extra_industry  # two rows of one unit carry a key nobody declared
    table = pa.table({
        "uscc": [f"91500000{i:010d}" for i in rng.integers(0, UNITS, ROWS)],
        "owner": [f"owner-{i}" for i in range(ROWS)],
        "industry": pa.array(list(industry), pa.string()),
        "district": [f"REAL-D{i}" for i in rng.integers(0, 40, ROWS)],
        "year": rng.integers(2015, 2025, ROWS),
        "amount": np.where(industry == "C", rng.uniform(0, 100, ROWS), rng.uniform(300, 500, ROWS)),
        "opened": [date(2021, 1, 1)] * ROWS,
    })
    pq.write_table(table, path)
    return table


@pytest.fixture
def wh(tmp_path: Path, catalog_url: str) -> Warehouse:
    w = Warehouse.open(Settings(home=tmp_path / "wh", database_url=catalog_url))
    w.users.bootstrap_admin("admin")
    admin = w.users.principal("admin")
    w.users.add(admin, "steward", "steward", "gov")
    w.users.add(admin, "other_steward", "steward", "gov")
    w.users.add(admin, "auditor", "auditor", "regulator")
    for t in ("bank_a", "bank_b", "bank_c"):
        w.users.add(admin, f"ana_{t}", "enterprise", t)
    yield w
    w.close()


def land(wh: Warehouse, tmp_path: Path, m: dict[str, Any], extra_industry: str | None = None) -> pa.Table:
    steward = wh.users.principal("steward")
    wh.datasets.register(steward, parse_manifest(m))
    table = write_data(tmp_path / f"{m['name']}.parquet", extra_industry)
    wh.ingest.ingest(steward, m["name"], tmp_path / f"{m['name']}.parquet")
    return table


def charges(wh: Warehouse, dataset: str = "loans") -> list[BudgetCharge]:
    with wh.db.read() as s:
        return list(s.execute(select(BudgetCharge).where(BudgetCharge.dataset == dataset,
                                                         BudgetCharge.kind == "synthetic")).scalars())


def audit(wh: Warehouse, action: str) -> list[dict[str, Any]]:
    with wh.db.read() as s:
        return [r.details for r in s.execute(select(AuditRecord).where(AuditRecord.action == action)
                                             .order_by(AuditRecord.seq)).scalars()]


def spent(wh: Warehouse, dataset: str = "loans") -> Fraction:
    shown = wh.budgets.show(wh.users.principal("steward"), dataset)
    shared = next(s for s in shown["scopes"] if s["scope"] == "*")
    return from_text(shared["spent"]["epsilon"], shared["spent"]["delta"]).epsilon


def test_generated_once_charged_once_then_free(wh: Warehouse, tmp_path: Path) -> None:
    real = land(wh, tmp_path, manifest())
    first = LocalClient(wh, "ana_bank_a").synthetic_dataset("loans", purpose="x")
    assert spent(wh) == 2
    again = LocalClient(wh, "ana_bank_b").synthetic_dataset("loans", purpose="x")  # another tenant: same table, free
    assert again == first and spent(wh) == 2
    (charge,) = charges(wh)
    assert from_text(charge.epsilon, charge.delta) == Budget.of(2) and charge.scope == "*"
    (gen,) = audit(wh, "synthetic.generated")
    assert (gen["epsilon"], gen["delta"], gen["version"], gen["rows"]) == ("2/1", "0", 1, 4000)
    assert [d["generated"] for d in audit(wh, "synthetic.downloaded")] == [True, False]
    assert (wh.settings.home / "synthetic" / "loans" / "v1.parquet").read_bytes() == first

    t = pq.read_table(io.BytesIO(first))
    assert t.schema == arrow_schema(column_specs(parse_manifest(manifest())))  # schema-identical
    assert t.num_rows == 4000
    # no real identifier, join key or undeclared dimension value appears
    for col in ("uscc", "owner", "district"):
        assert not set(t.column(col).drop_null().to_pylist()) & set(real.column(col).to_pylist()), col
    # the real shape: industry shares and the industry → amount dependency
    shares = {k: v / 4000 for k, v in zip(*np.unique(t.column("industry").to_pylist(), return_counts=True))}
    assert abs(shares["C"] - 0.6) < 0.05 and abs(shares["G"] - 0.1) < 0.05
    ind, amt = np.array(t.column("industry").to_pylist()), t.column("amount").to_numpy()
    assert amt[ind == "C"].mean() < 150 < 250 < amt[ind != "C"].mean()


def test_a_new_version_is_a_new_table_and_a_new_charge(wh: Warehouse, tmp_path: Path) -> None:
    land(wh, tmp_path, manifest(budget={"epsilon": 5}))
    steward = wh.users.principal("steward")
    wh.synthetic.get(steward, "loans")
    more = pq.read_table(tmp_path / "loans.parquet").slice(0, 100)
    pq.write_table(more, tmp_path / "more.parquet")
    assert wh.ingest.ingest(steward, "loans", tmp_path / "more.parquet")["version"] == 2
    wh.synthetic.get(steward, "loans")
    assert spent(wh) == 4 and len(charges(wh)) == 2
    assert [g["version"] for g in audit(wh, "synthetic.generated")] == [1, 2]


def test_refused_when_the_budget_is_short(wh: Warehouse, tmp_path: Path) -> None:
    land(wh, tmp_path, manifest(budget={"epsilon": 1}, epsilon_per_query=0.1))
    with pytest.raises(Refused, match="synthetic table needs 2") as exc:
        wh.synthetic.get(wh.users.principal("ana_bank_a"), "loans", purpose="x")
    assert exc.value.details["rule"] == "dp_budget"
    assert charges(wh) == [] and spent(wh) == 0
    assert not (wh.settings.home / "synthetic" / "loans").exists()


def test_refused_when_the_policy_does_not_allow_it(wh: Warehouse, tmp_path: Path) -> None:
    m = manifest()
    del m["policy"]["dp"]["synthetic"]
    land(wh, tmp_path, m)
    with pytest.raises(Refused, match="does not allow DP synthetic data") as exc:
        wh.synthetic.get(wh.users.principal("ana_bank_a"), "loans", purpose="x")
    assert exc.value.details["rule"] == "dp_synthetic" and charges(wh) == [] and spent(wh) == 0


def test_refused_before_any_data_lands(wh: Warehouse) -> None:
    wh.datasets.register(wh.users.principal("steward"), parse_manifest(manifest()))
    with pytest.raises(Refused, match="no data"):
        wh.synthetic.get(wh.users.principal("steward"), "loans")
    assert charges(wh) == []


def test_who_may_ask(wh: Warehouse, tmp_path: Path) -> None:
    land(wh, tmp_path, manifest())
    with pytest.raises(NotFound):
        wh.synthetic.get(wh.users.principal("ana_bank_c"), "loans")  # tenant not allowed
    with pytest.raises(Forbidden):
        wh.synthetic.get(wh.users.principal("other_steward"), "loans")
    with pytest.raises(Forbidden):
        wh.synthetic.get(wh.users.principal("auditor"), "loans")
    assert charges(wh) == []


def test_an_undeclared_key_held_by_one_unit_never_appears(wh: Warehouse, tmp_path: Path) -> None:
    land(wh, tmp_path, manifest(synthetic={"epsilon": 10, "rows": 20000}, budget={"epsilon": 20}),
         extra_industry="SECRET-FIRM")
    t = pq.read_table(io.BytesIO(wh.synthetic.get(wh.users.principal("steward"), "loans")))
    assert set(t.column("industry").to_pylist()) == {"C", "F", "G"}


def test_concurrent_requests_charge_once(wh: Warehouse, tmp_path: Path) -> None:
    land(wh, tmp_path, manifest(budget={"epsilon": 30}))  # the budget would allow 15: only the guard stops them
    barrier = threading.Barrier(6)
    got: list[bytes | str] = []

    def go(i: int) -> None:
        barrier.wait()
        try:
            got.append(wh.synthetic.get(wh.users.principal("ana_bank_a" if i % 2 else "ana_bank_b"), "loans",
                                        purpose="x"))
        except Conflict:
            got.append("conflict")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(charges(wh)) == 1 and spent(wh) == 2
    tables = {g for g in got if isinstance(g, bytes)}
    assert len(tables) == 1 and len(got) == 6


def test_a_tampered_table_is_not_served(wh: Warehouse, tmp_path: Path) -> None:
    land(wh, tmp_path, manifest())
    steward = wh.users.principal("steward")
    wh.synthetic.get(steward, "loans")
    path = wh.settings.home / "synthetic" / "loans" / "v1.parquet"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(Tampered, match="recorded hash"):
        wh.synthetic.get(steward, "loans")
    assert audit(wh, "synthetic.refused")[-1]["code"] == "tampered"


def test_over_http_as_csv(wh: Warehouse, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    land(wh, tmp_path, manifest())
    token = wh.users.issue_token(wh.users.principal("admin"), "ana_bank_a")
    http = TestClient(create_app(warehouse=wh))
    client = Client("http://testserver", token, transport=http._transport)
    text = client.synthetic_dataset("loans", fmt="csv", purpose="x").decode()
    assert text.splitlines()[0].replace('"', "").split(",") == [c["name"] for c in manifest()["schema"]]
    assert len(text.splitlines()) == 4001
    with pytest.raises(NotFound):
        Client("http://testserver", wh.users.issue_token(wh.users.principal("admin"), "ana_bank_c"),
               transport=http._transport).synthetic_dataset("loans", purpose="x")


def test_every_refusal_is_audited(wh: Warehouse, tmp_path: Path) -> None:
    """Other tenant, wrong role, another steward's dataset, no dp.synthetic, no budget: each attempt
    leaves a synthetic.refused record naming its code and rule (before, none of them did)."""
    land(wh, tmp_path, manifest(budget={"epsilon": 1}))
    m = manifest("no_synth")
    del m["policy"]["dp"]["synthetic"]
    land(wh, tmp_path, m)
    attempts = [("ana_bank_c", "loans", NotFound), ("auditor", "loans", Forbidden),
                ("other_steward", "loans", Forbidden), ("ana_bank_a", "no_synth", Refused),
                ("ana_bank_a", "loans", BudgetExhausted), ("ana_bank_a", "nope", NotFound)]
    for user, name, error in attempts:
        with pytest.raises(error):
            wh.synthetic.get(wh.users.principal(user), name, purpose="x")
    with wh.db.read() as s:
        got = [(r.actor, r.object_id, r.details["code"]) for r in s.execute(
            select(AuditRecord).where(AuditRecord.action == "synthetic.refused").order_by(AuditRecord.seq)).scalars()]
    assert got == [(u, n, e.code) for u, n, e in attempts]
    assert charges(wh) == [] and audit(wh, "synthetic.downloaded") == []


def test_the_purpose_is_checked_like_every_other_access(wh: Warehouse, tmp_path: Path) -> None:
    land(wh, tmp_path, manifest())
    analyst = wh.users.principal("ana_bank_a")
    for purpose in (None, "marketing"):  # none named, or one the policy does not allow: refused, nothing spent
        with pytest.raises(AccessRefused) as exc:
            wh.synthetic.get(analyst, "loans", purpose=purpose)
        assert exc.value.details["rule"] == "purpose_allowed"
    assert charges(wh) == [] and [d["purpose"] for d in audit(wh, "synthetic.refused")] == [None, "marketing"]
    assert wh.synthetic.get(analyst, "loans", purpose="x")  # the policy's purpose: served
    assert audit(wh, "synthetic.downloaded")[-1]["purpose"] == "x"
