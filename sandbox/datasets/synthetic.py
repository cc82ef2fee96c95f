"""DP synthetic development tables: generated once per (dataset, Delta version), then free.

    data = wh.synthetic.get(principal, "tax_payments", fmt="parquet", purpose="credit_risk")  # twh dataset synthetic

Where the policy has a ``dp.synthetic`` block (``{epsilon, rows}``):

1. **Check** the caller (an enterprise of an allowed tenant *for one of the policy's purposes*,
   checked like every other access; a steward of the dataset; an admin) and that the policy
   allows it; work out the modelled columns from declarations alone (:func:`domains_of`) —
   refused before anything is charged if there are none. Every refusal, whatever its reason
   (tenant, purpose, role, policy, no data, budget, in flight), is audited as
   ``synthetic.refused``.
2. **Reserve** ``(epsilon, 0)`` on the dataset's *shared* pool (a release made once for every
   tenant: no tenant's share pays for the others) through :meth:`Budgets.reserve`, kind
   ``synthetic``, keyed by (dataset, version). Inside the same locked transaction a guard
   refuses the reservation if another request already holds or is generating that table, so
   concurrent requests charge once. Never refunded, also when generation fails.
3. **Bound** each privacy unit to ``max_rows_per_unit`` rows in DuckDB over the pinned
   snapshot's files (a random choice of the unit's rows; no unit → a row is a unit, m = 1),
   projecting only the modelled columns: identifiers and the unit never leave the SQL.
4. **Synthesise** with :func:`dp.synth.synthesize` (noisy marginals on a DP-selected tree).
   Columns it does not model — identifiers, join keys, the privacy unit, dates, strings and
   numbers without a declared domain — are filled like mock data (:mod:`sandbox.datasets.mock`, fresh
   random draws): keys are ``M`` + 17 digits, never a real value, and join across mock and
   synthetic tables.
5. **Store** ``<home>/synthetic/<dataset>/v<version>.parquet`` and write the charge's result
   (path, SHA-256, rows, accounting) with the ``synthetic.generated`` audit record in one
   transaction. Later requests re-hash the stored bytes and return them (``synthetic.downloaded``).
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.schema import COLUMN_TYPES
from dp.budget import Budget, to_fraction
from dp.errors import DPError
from dp.synth import Domain, Synthetic, synthesize
from policies import ANY_TENANT, ColumnRole, Policy, check_access, query_decision

from ..auth import Principal, Role
from ..broker.budget import Budgets
from ..catalog.db import BudgetCharge
from ..context import Context, get_dataset, grade_allowances, stewards_of
from ..errors import (
    AccessRefused,
    BudgetExhausted,
    Conflict,
    Forbidden,
    InternalError,
    InvalidInput,
    NotFound,
    Refused,
    Tampered,
    TwhError,
)
from ..gate.scan import snapshot_source
from ..tables import objects, storage
from ..tables.snapshot import Snapshot
from .manifest import DatasetManifest
from .mock import mock_table

KIND = "synthetic"
#: a generation that has not finished after this long is taken as crashed (its charge stays)
STALE_AFTER = timedelta(minutes=30)


def synthetic_key(dataset: str, version: int) -> str:
    return hashlib.sha256(f"synthetic\0{dataset}\0{version}".encode()).hexdigest()


def domains_of(manifest: DatasetManifest, policy: Policy) -> list[Domain]:
    """The modelled columns and their declared domains (never read from data).

    Dimensions and measures only; a string needs ``dp.public_keys`` or declared ``categories``,
    a number the measure's ``dp.bounds`` or declared ``min``/``max``; bools are {false, true}.
    """
    rules = policy.dp
    out: list[Domain] = []
    for c in manifest.columns:
        if c.role not in (ColumnRole.DIMENSION, ColumnRole.MEASURE) or c.name == policy.privacy_unit:
            continue
        if c.type == "string":
            cats = (rules.public_keys.get(c.name) if rules else None) or c.categories
            if cats:
                out.append(Domain.categorical(c.name, cats, nullable=c.nullable))
        elif c.type == "bool":
            out.append(Domain.categorical(c.name, [False, True], nullable=c.nullable))
        elif c.type in ("int32", "int64", "float64"):
            bounds = rules.bounds.get(c.name) if rules and c.role is ColumnRole.MEASURE else None
            if bounds is None and c.min is not None and c.max is not None and c.min < c.max:
                bounds = (c.min, c.max)
            if bounds is not None:
                out.append(Domain.numeric(c.name, bounds[0], bounds[1], integer=c.type != "float64",
                                          nullable=c.nullable))
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def bounded_rows(snap: Snapshot, columns: list[str], unit: str | None, max_rows: int) -> pa.Table:
    """The modelled columns of at most ``max_rows`` randomly chosen rows per unit (DuckDB SQL)."""
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False,
                                             "python_enable_replacements": False})
    try:
        source, _files = snapshot_source(con, snap, "__twh_src")
        cols = ", ".join(_quote(c) for c in columns)
        if unit is None:
            return con.sql(f"SELECT {cols} FROM {source}").to_arrow_table()
        # a random choice of each unit's rows (a window may not order by random() itself)
        drawn = f"(SELECT {cols}, {_quote(unit)} AS __twh_u, random() AS __twh_r FROM {source})"
        return con.sql(f"SELECT {cols} FROM (SELECT {cols}, row_number() OVER (PARTITION BY __twh_u "
                       f"ORDER BY __twh_r) AS __twh_rn FROM {drawn}) WHERE __twh_rn <= {int(max_rows)}"
                       ).to_arrow_table()
    except duckdb.Error as exc:
        raise InternalError(f"the rows of {snap.dataset!r} could not be bounded ({type(exc).__name__})") from None
    finally:
        con.close()


def synthetic_table(manifest: DatasetManifest, policy: Policy, snap: Snapshot) -> tuple[pa.Table, Synthetic]:
    """The whole synthetic table, in the manifest's exact schema."""
    assert policy.dp is not None and policy.dp.synthetic is not None
    domains = domains_of(manifest, policy)
    m = policy.dp.max_rows_per_unit if policy.privacy_unit else 1
    data = bounded_rows(snap, [d.name for d in domains], policy.privacy_unit, m)
    rows = policy.dp.synthetic.rows
    model = synthesize(domains, {d.name: data.column(d.name) for d in domains}, rows=rows,
                       epsilon=to_fraction(policy.dp.synthetic.epsilon), max_rows_per_unit=m)
    filler = mock_table(manifest, rows, seed=secrets.randbits(64))  # fresh codes, never real values
    arrays, fields = [], []
    for c in manifest.columns:
        t = COLUMN_TYPES[c.type]
        arr = model.table.column(c.name) if c.name in model.table.column_names else filler.column(c.name)
        arrays.append(arr.cast(t))
        fields.append(pa.field(c.name, t, nullable=c.nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)), model


class Synthetics:
    def __init__(self, ctx: Context, manifests: Any, budgets: Budgets) -> None:
        self.ctx = ctx
        self._manifests = manifests
        self.budgets = budgets

    @property
    def root(self) -> Path:
        return self.ctx.settings.home / "synthetic"

    def get(self, principal: Principal, name: str, *, fmt: str = "parquet", purpose: str | None = None) -> bytes:
        """The dataset's synthetic table at its current version: generated (and charged) on the
        first request, the stored bytes afterwards. Enterprises state their ``purpose``."""
        if fmt not in ("parquet", "csv"):
            raise InvalidInput("format must be csv or parquet", details={"field": "format"})
        try:
            version, data, generated = self._get(principal, name, purpose)
        except TwhError as exc:
            # The attempt happened even though nothing left: every refusal leaves a record.
            self.ctx.record(principal, "synthetic.refused", "dataset", str(name)[:80],
                            {"code": exc.code, "reason": exc.message, "rule": exc.details.get("rule"),
                             "purpose": purpose})
            raise
        self.ctx.record(principal, "synthetic.downloaded", "dataset", name,
                        {"version": version, "generated": generated, "format": fmt, "purpose": purpose,
                         "sha256": hashlib.sha256(data).hexdigest()})
        if fmt == "csv":
            buf = io.BytesIO()
            pa_csv.write_csv(pq.read_table(io.BytesIO(data)), buf)
            return buf.getvalue()
        return data

    def _get(self, principal: Principal, name: str, purpose: str | None) -> tuple[int, bytes, bool]:
        manifest: DatasetManifest = self._manifests(name)
        policy = manifest.build_policy()
        with self.ctx.db.read() as s:
            ds = get_dataset(s, name)
            version, table_path = ds.current_version, ds.table_path
            is_steward = principal.name in stewards_of(s, ds.id)
            allowed = grade_allowances(s, name)
        if principal.role is Role.ENTERPRISE:
            if not (ANY_TENANT in policy.tenants or principal.tenant in policy.tenants):
                raise NotFound(f"dataset {name!r} does not exist", details={"dataset": name})
            if not purpose:
                raise AccessRefused(f"name the purpose you want {name!r}'s synthetic data for (one of the "
                                    "policy's purposes)", details={"rule": "purpose_allowed", "dataset": name})
            decision = check_access(policy, principal.tenant, purpose)
            if not decision.allowed:
                raise AccessRefused(decision.reason, details={"rule": decision.rule, "dataset": name})
        elif principal.role is Role.STEWARD and not is_steward:
            raise Forbidden(f"{principal.name} does not steward {name!r}")
        elif principal.role not in (Role.ADMIN, Role.STEWARD):
            raise Forbidden(f"this action needs the role enterprise, steward or admin; "
                            f"{principal.name} is {principal.role.value}")
        graded = query_decision(manifest.grade, "dp", allowed)  # a DP release like any other: core data, none
        if not graded.allowed:
            raise Refused(f"{name}: {graded.reason}", details={"rule": graded.rule, "dataset": name})
        if policy.dp is None or policy.dp.synthetic is None:
            raise Refused(f"the policy of {name!r} does not allow DP synthetic data (no dp.synthetic block)",
                          details={"rule": "dp_synthetic", "dataset": name})
        if version == 0:
            raise Refused(f"{name!r} holds no data yet: nothing to synthesise",
                          details={"rule": "dp_synthetic", "dataset": name})
        if not domains_of(manifest, policy):
            raise Refused(f"no column of {name!r} declares a domain (categories, public keys or bounds) "
                          "to model", details={"rule": "dp_synthetic", "dataset": name})
        key = synthetic_key(name, version)
        with self.ctx.db.read() as s:
            ready, pending = _state(s, key)
        if ready is not None:
            return version, self._read(name, ready), False
        if pending:
            raise Conflict(f"the synthetic table of {name!r} v{version} is being generated; try again shortly",
                           details={"dataset": name, "version": version})
        return version, self._generate(principal, name, version, table_path, manifest, policy, key), True

    def _generate(self, principal: Principal, name: str, version: int, table_path: str,
                  manifest: DatasetManifest, policy: Policy, key: str) -> bytes:
        assert policy.dp is not None and policy.dp.synthetic is not None
        charge = Budget(to_fraction(policy.dp.synthetic.epsilon), Fraction(0))

        def only_once(s: Session) -> None:  # runs under the budget lock, before our charge row
            ready, pending = _state(s, key)
            if ready is not None or pending:
                raise Conflict(f"the synthetic table of {name!r} v{version} is already generated or being "
                               "generated; try again shortly", details={"dataset": name, "version": version})
        try:
            ids = self.budgets.reserve(principal, [name], charge, job_id=None, kind=KIND, key=key, shared=True,
                                       guard=only_once)
        except BudgetExhausted as exc:
            raise BudgetExhausted(exc.message.replace("this query needs", "its synthetic table needs"),
                                  details=exc.details) from None
        try:
            snap = storage.pin_snapshot(self.ctx.table(table_path), name, version)
            table, model = synthetic_table(manifest, policy, snap)
            buf = io.BytesIO()
            pq.write_table(table, buf)
            data = buf.getvalue()
            path = self.root / name / f"v{version}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            shared = self.ctx.settings.shared_root
            if shared is not None:  # another machine of the warehouse may serve it (checked by its hash)
                objects.write(shared.child("synthetic", name, f"v{version}.parquet"), data)
        except BaseException as exc:
            self._failed(ids[0], type(exc).__name__)  # the charge stays: no refunds
            if isinstance(exc, DPError):
                raise InternalError(f"synthetic data for {name!r} could not be generated: {exc.message}") from exc
            raise
        sha = hashlib.sha256(data).hexdigest()
        result = {"state": "ready", "version": version, "path": str(path.relative_to(self.ctx.settings.home)),
                  "sha256": sha, "rows": table.num_rows, **model.accounting()}
        details = {"version": version, "epsilon": result["epsilon"], "delta": "0", "rows": table.num_rows,
                   "sha256": sha, "charge_id": ids[0], "edges": result["edges"],
                   "measurements": len(model.measurements)}
        with self.ctx.recorded(principal, "synthetic.generated", "dataset", name, details) as s:
            row = s.get(BudgetCharge, ids[0])
            assert row is not None
            row.result = result
        return data

    def _failed(self, charge_id: int, reason: str) -> None:
        with self.ctx.db.transaction() as s:
            row = s.get(BudgetCharge, charge_id)
            if row is not None:
                row.result = {"state": "failed", "reason": reason}

    def _read(self, name: str, record: dict[str, Any]) -> bytes:
        try:
            data = (self.ctx.settings.home / record["path"]).read_bytes()
        except OSError:
            shared = self.ctx.settings.shared_root  # generated on another machine of the warehouse
            data = (objects.read(shared.child("synthetic", name, f"v{record['version']}.parquet"))
                    if shared is not None else None) or b""
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise Tampered(f"the stored synthetic table of {name!r} does not match its recorded hash; it is not "
                           "served", details={"rule": "integrity", "dataset": name})
        return data


def _state(s: Session, key: str) -> tuple[dict[str, Any] | None, int]:
    """The ready record for ``key`` (if any) and how many generations are still in flight."""
    rows = s.execute(select(BudgetCharge).where(BudgetCharge.query_key == key, BudgetCharge.kind == KIND)
                     .order_by(BudgetCharge.id)).scalars().all()
    now = datetime.now(UTC)
    pending = 0
    for r in rows:
        if r.result and r.result.get("state") == "ready":
            return r.result, 0
        created = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)
        if r.result is None and now - created < STALE_AFTER:
            pending += 1
    return None, pending
