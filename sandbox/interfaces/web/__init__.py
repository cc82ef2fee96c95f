"""The web UI: server-rendered pages for stewards, auditors and enterprise users, on the API's app.

Same tokens and roles as the API: a person signs in by pasting their token, which is checked and
not kept — the session, in the catalog, names the token's row (see :mod:`.sessions`); every page
resolves the principal and calls the facade, so every permission rule is the services' own. No
JavaScript; every POST carries the session's CSRF token. Pages are in English or Chinese (zh-CN):
the user's setting, else the browser's (see :mod:`.core`).

Pages (all under ``/ui``):

=================================  ===============================================================
``/ui/login``, ``/ui/logout``      sign in with a token, sign out
``/ui/language``                   the page language: a cookie (GET, before signing in) or the
                                   user's setting in the catalog (POST, CSRF-checked)
``/ui/queue``                      steward: pending exports of the datasets they steward
``/ui/exports[/{id}]``             exports with status; review page (files, gate decisions, code,
                                   withheld logs, bundle hash, approve/deny); downloads when approved
``/ui/exports/{id}/model``         a training export's model card (ε, δ, accountant, σ, q, steps,
                                   clipping, versions, hashes, DP held-out metrics and loss curve)
                                   and its curves; for reviewers only, the job's training review
                                   (membership-inference attack report, exact counts)
``/ui/jobs[/{id}]``                jobs with status; a job's queries, decisions, code and logs
``/ui/datasets[/{name}]``          catalog (schemas, column roles, GB/T 43697 grades; ``?grade=``);
                                   classification, policy, contract, versions, quarantine reports,
                                   budget burn-down over its period, gate decisions plot
``/ui/audit``                      auditor: searchable, filterable, paginated log; chain verification;
                                   export as JSON lines / CSV
``/ui/audit/activity``             activity and gate-decision plots over time
``/ui/audit/jobs/{id}``            replay of one job from its audit records
``/ui/features[/{ref}]``           the feature library: definitions, lineage, who uses them
``/ui/models[/{ref}]``             the model catalog (terms, approvals, card) and verification products
``/ui/subject``                    a data subject's access log and authorisations (revocable there);
                                   auditors look a subject up
=================================  ===============================================================
"""

from __future__ import annotations

from fastapi import FastAPI

from ...access.throttle import Attempts, AuthFailures
from .sessions import SessionStore

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Add the pages to ``app`` (whose ``state.warehouse`` is set)."""
    from .pages import (
        audit as pages_audit,
    )
    from .pages import (
        datasets as pages_datasets,
    )
    from .pages import (
        model as pages_model,
    )
    from .pages import (
        products as pages_products,
    )
    from .pages import (
        session as pages_session,
    )
    from .pages import (
        subject as pages_subject,
    )
    from .pages import (
        work as pages_work,
    )

    wh = app.state.warehouse
    st = wh.settings
    app.state.web_sessions = SessionStore(wh.db, st.secrets_dir, token_ttl_days=st.token_ttl_days)
    app.state.login_attempts = Attempts(st.auth_window_seconds, st.login_attempts_per_window)
    if not hasattr(app.state, "auth_failures"):  # the API's, when it mounts the pages (one count per source)
        app.state.auth_failures = AuthFailures(wh.ctx)
    for module in (pages_session, pages_work, pages_model, pages_datasets, pages_audit, pages_products, pages_subject):
        app.include_router(module.router)
