"""What every service shares: settings, the catalog database, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies import approval_needed

from .audit.log import AuditLog
from .auth import Principal, Role
from .catalog.db import Database, Dataset, DatasetSteward, GradeOverride
from .catalog.locks import commit_lock
from .errors import Forbidden, NotFound
from .settings import Settings
from .tables.uris import Location


@dataclass
class Context:
    settings: Settings
    db: Database
    audit: AuditLog

    @contextmanager
    def recorded(
        self, principal: Principal, action: str, object_type: str, object_id: str, details: dict[str, Any] | None = None
    ) -> Iterator[Session]:
        """A transaction that commits only together with its audit record.

        The record is appended last, after the action's own writes, so it can carry ids the
        action created; if either fails, both roll back.
        """
        with self.db.transaction() as session:
            yield session
            self.audit.append(session, principal.actor, action, object_type, object_id, details)

    def table(self, uri: str) -> Location:
        """The location the catalog recorded for a table, with this warehouse's object store."""
        return self.settings.location(uri)

    def commit_lock(self, table: Location) -> AbstractContextManager[None]:
        """Held by every writer of an object-storage table from opening it to its commit
        (:mod:`sandbox.catalog.locks`); local tables need none (the file system arbitrates)."""
        return nullcontext() if table.is_local else commit_lock(self.db, table.uri)

    def record(self, principal: Principal, action: str, object_type: str, object_id: str,
               details: dict[str, Any] | None = None) -> None:
        """An audit record on its own (e.g. a refusal: the action did not happen, the attempt did)."""
        with self.db.transaction() as session:
            self.audit.append(session, principal.actor, action, object_type, object_id, details)


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"this action needs the role {allowed}; {principal.name} is {principal.role.value}")


def get_dataset(session: Session, name: str) -> Dataset:
    ds = session.execute(select(Dataset).where(Dataset.name == name)).scalar_one_or_none()
    if ds is None:
        raise NotFound(f"dataset {name!r} does not exist", details={"dataset": name})
    return ds


def stewards_of(session: Session, dataset_id: int) -> set[str]:
    rows = session.execute(select(DatasetSteward.user_name).where(DatasetSteward.dataset_id == dataset_id))
    return {r[0] for r in rows}


def stewarded_by(session: Session, user: str) -> set[str]:
    rows = session.execute(
        select(Dataset.name).join(DatasetSteward, DatasetSteward.dataset_id == Dataset.id).where(
            DatasetSteward.user_name == user
        )
    )
    return {r[0] for r in rows}


def grade_allowances(session: Session, dataset: str) -> frozenset[str]:
    """What admins allowed ``dataset`` beyond its grade (``policies.grading.ALLOWANCES``), audited."""
    rows = session.execute(select(GradeOverride.allow).where(GradeOverride.dataset == dataset))
    return frozenset(r[0] for r in rows)


def needing_approval(session: Session, manifests: Any, datasets: list[str]) -> list[str]:
    """The datasets whose stewards must approve what leaves from them: the policy asks for it, or
    the grade does (important and core data, unless an admin allowed ``no_approval``).
    ``manifests``: dataset name -> its manifest."""
    return [n for n in datasets if approval_needed(manifests(n).grade,
                                                   manifests(n).build_policy().output.require_approval,
                                                   grade_allowances(session, n))]
