"""The sdc release budget: how many distinct populations a tenant may have released from a dataset.

    ledger = ReleaseLedger(manifests)
    ledger.charge(session, tenant, job_id, plan.tables, result.identities)   # in the audit transaction
    ledger.show(dataset, tenant)                                             # used / limit per period

Linear reconstruction (Dinur & Nissim 2003) needs about as many independent noisy sums as there
are unknowns, and more to average the noise away; a cap on the distinct released cells bounds
how many equations one tenant can gather per period. A cell's identity is a digest of its rows
(:func:`sandbox.gate.release.cell_identity`), so a repeat or a rewording of the same population
costs nothing, and two populations differing by one row cost one each. Charges are counted under
the datasets' differencing-head locks, which the guard takes first in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..catalog.db import ReleaseCharge
from ..errors import QueryRefused
from .periods import period_key


class ReleaseLedger:
    def __init__(self, manifests: Callable[[str], Any]) -> None:
        self._manifests = manifests

    def charge(self, s: Session, tenant: str, job_id: str | None, datasets: Sequence[str],
               identities: Sequence[str]) -> dict[str, Any]:
        """Charge the new identities to every dataset read, or refuse (rule ``release_budget``)."""
        wanted = sorted(set(identities))
        out: dict[str, Any] = {}
        for name in sorted(set(datasets)):
            rules = self._manifests(name).build_policy().sdc.release_budget
            period = period_key(rules.period)
            known = set(s.execute(select(ReleaseCharge.identity).where(
                ReleaseCharge.dataset == name, ReleaseCharge.tenant == tenant, ReleaseCharge.period == period,
                ReleaseCharge.identity.in_(wanted))).scalars()) if wanted else set()
            new = [i for i in wanted if i not in known]
            used = s.execute(select(func.count()).select_from(ReleaseCharge).where(
                ReleaseCharge.dataset == name, ReleaseCharge.tenant == tenant,
                ReleaseCharge.period == period)).scalar_one()
            if used + len(new) > rules.per_tenant:
                raise QueryRefused(
                    f"the release budget of {name!r} allows {rules.per_tenant} distinct populations per tenant "
                    f"per {rules.period if rules.period != 'none' else 'lifetime'}; {used} are used and this "
                    f"query would release {len(new)} more",
                    details={"rule": "release_budget", "dataset": name, "period": period, "used": used,
                             "limit": rules.per_tenant, "wanted": len(new)})
            if rules.total is not None:
                everyone = s.execute(select(func.count()).select_from(ReleaseCharge).where(
                    ReleaseCharge.dataset == name, ReleaseCharge.period == period)).scalar_one()
                if everyone + len(new) > rules.total:
                    raise QueryRefused(
                        f"the release budget of {name!r} (all tenants) allows {rules.total} distinct populations "
                        f"per period; it is spent", details={"rule": "release_budget", "dataset": name,
                                                             "period": period, "scope": "all"})
            for identity in new:
                s.add(ReleaseCharge(dataset=name, tenant=tenant, period=period, identity=identity, job_id=job_id))
            out[name] = {"period": period, "charged": len(new), "used": used + len(new), "limit": rules.per_tenant}
        s.flush()
        return out

    def show(self, s: Session, dataset: str, tenant: str | None, *, exclude_jobs: set[str] = frozenset()
             ) -> dict[str, Any]:
        """Populations used this period (by ``tenant``, or per tenant when None) and the limits;
        charges of ``exclude_jobs`` (jobs under review, for their submitter) are not counted."""
        rules = self._manifests(dataset).build_policy().sdc.release_budget
        period = period_key(rules.period)
        q = (select(ReleaseCharge.tenant, func.count()).where(ReleaseCharge.dataset == dataset,
                                                               ReleaseCharge.period == period)
             .group_by(ReleaseCharge.tenant))
        if tenant is not None:
            q = q.where(ReleaseCharge.tenant == tenant)
        if exclude_jobs:
            q = q.where(ReleaseCharge.job_id.is_(None) | ReleaseCharge.job_id.not_in(sorted(exclude_jobs)))
        used = dict(s.execute(q).all())
        return {"period": period, "per_tenant_limit": rules.per_tenant, "total_limit": rules.total,
                "used": {tenant: used.get(tenant, 0)} if tenant is not None else used,
                "used_total": sum(used.values()) if tenant is None else None}
