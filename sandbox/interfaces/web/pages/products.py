"""The products' pages: the feature library, the model catalog and the verification products.

Every signed-in person reads the library (definitions are SQL over declared columns, no data);
catalog models and products show what the services return for the viewer (an enterprise: those
its tenant may use or owns; a steward: its datasets'; auditors: all).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..core import WH, HtmlRoute, Who, render

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


@router.get("/ui/features")
def features(request: Request, viewer: Who, wh: WH) -> Response:
    return render(request, "features.html", viewer, features=wh.products.features.list(viewer.principal))


@router.get("/ui/features/{ref}")
def feature(request: Request, ref: str, viewer: Who, wh: WH) -> Response:
    return render(request, "feature.html", viewer, f=wh.products.features.show(viewer.principal, ref))


@router.get("/ui/models")
def models(request: Request, viewer: Who, wh: WH) -> Response:
    who = viewer.principal
    return render(request, "catalog.html", viewer, models=wh.products.models.list(who),
                  products=wh.products.verification.list(who))


@router.get("/ui/models/{ref}")
def model(request: Request, ref: str, viewer: Who, wh: WH) -> Response:
    return render(request, "catalog_model.html", viewer, cm=wh.products.models.show(viewer.principal, ref))
