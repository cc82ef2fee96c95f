"""The catalog and dataset pages: schema and column roles, policy, contract, versions, quarantine, plots.

Quarantine reports appear only when the service includes them (stewards of the dataset and
admins). The budget slot shows the burn-down when the warehouse keeps a DP budget ledger for
the dataset, and says "no DP budget" otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from ....auth import Principal, Role
from ....errors import TwhError
from ....warehouse import Warehouse
from .. import plots
from ..core import WH, HtmlRoute, Who, language, render

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
MAX_JOBS_PLOTTED = 200


def budget_info(wh: Warehouse, who: Principal, name: str) -> Mapping[str, Any] | None:
    """The dataset's budget ledger (the gate's :class:`~sandbox.broker.budget.Budgets`), or None if not kept/visible."""
    service = getattr(wh, "budgets", None)
    if service is None:
        return None
    try:
        info = service.show(who, name)
    except TwhError:  # e.g. a steward of another dataset: the ledger is not theirs to read
        return None
    return info if isinstance(info, Mapping) else None


def gate_points(wh: Warehouse, who: Principal, name: str) -> list[tuple[str, str, int]]:
    """``(time, outcome, suppressed)`` for the queries of the viewer's visible jobs that read ``name``."""
    points: list[tuple[str, str, int]] = []
    for j in [j for j in wh.jobs.list(who) if name in j["datasets"]][:MAX_JOBS_PLOTTED]:
        for q in wh.jobs.get(who, j["id"]).get("queries") or []:
            if q["outcome"] == "released" and name not in (q.get("versions") or {}):
                continue
            points.append((j["created_at"], q["outcome"], int((q.get("details") or {}).get("suppressed_groups") or 0)))
    return points


@router.get("/ui/datasets")
def catalog(request: Request, viewer: Who, wh: WH,
            grade: Annotated[Literal["core", "important", "general", "unclassified", ""] | None,
                             Query()] = None) -> Response:
    """The catalog, optionally of one GB/T 43697 grade (``?grade=important``)."""
    who = viewer.principal
    mine = wh.datasets.stewarded_by(who.name) if who.role is Role.STEWARD else set()
    return render(request, "datasets.html", viewer, datasets=wh.datasets.list(who, grade or None), mine=mine,
                  grade=grade or None)


@router.get("/ui/datasets/{name}")
def dataset_page(request: Request, name: str, viewer: Who, wh: WH) -> Response:
    who = viewer.principal
    ds = wh.datasets.show(who, name)
    lang = language(request, viewer)
    info = budget_info(wh, who, name)
    series = plots.budget_series(info)
    budget_plot = plots.data_uri(plots.budget_figure(series[0], series[1], name, period=plots.budget_period(info),
                                                     lang=lang)) if series else None
    gate_plot = None
    if who.role is not Role.ENTERPRISE:  # the submitter never sees what the gate decided on its queries
        gate_plot = plots.data_uri(plots.gate_figure(gate_points(wh, who, name), lang=lang))
    return render(request, "dataset.html", viewer, lang=lang, ds=ds, budget=series, budget_plot=budget_plot,
                  gate_plot=gate_plot, is_steward=who.name in ds["stewards"],
                  release_mode=wh.manifest(name).build_policy().release_mode)
